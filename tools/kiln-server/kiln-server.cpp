//===- kiln-server.cpp - an OpenAI-compatible HTTP server for .kiln models ===//
//
// llama-server-like: /v1/completions and /v1/chat/completions (streamed as
// server-sent events when "stream" is true), /v1/embeddings for encoders,
// /v1/models and /health, on cpp-httplib. Requests decode in the sequence
// slots of SequenceScheduler; a request past a limit (sequences, context,
// body size) gets an HTTP error with an OpenAI-style JSON body.
//
//===----------------------------------------------------------------------===//

#include "SequenceScheduler.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

using json = nlohmann::json;
using namespace kiln;
using namespace kiln::server;

namespace {

const char *kUsage =
    "usage: kiln-server -m MODEL.kiln [--host ADDR] [--port N] [-t THREADS]\n"
    "       [--max-sequences N] [--ctx N] [--max-request-bytes N]\n"
    "       [--alias NAME] [--device cpu|cuda|cuda:N]\n"
    "  -m, --model FILE         compiled model (.kiln)\n"
    "  --host ADDR              address to listen on (default 127.0.0.1)\n"
    "  --port N                 port (default 8080; 0 picks a free one)\n"
    "  -t, --threads N          threads of the model, 1 to 1024 (default 2)\n"
    "  --max-sequences N        requests generating at once (default 4); more\n"
    "                           get HTTP 503\n"
    "  --ctx N                  context per sequence, prompt + generated\n"
    "                           tokens (default: the model's n_ctx)\n"
    "  --max-request-bytes N    largest request body (default 1048576); larger\n"
    "                           get HTTP 413\n"
    "  --alias NAME             model id in the API (default: the file name\n"
    "                           without .kiln)\n"
    "  --device D               cpu, cuda or cuda:N (default: $KILN_DEVICE,\n"
    "                           else the artifact's first target this machine\n"
    "                           runs)\n"
    "Once it accepts connections it prints a line ending in\n"
    "'listening on http://ADDR:PORT' on stderr.\n";

[[noreturn]] void die(const std::string &message) {
  std::fprintf(stderr, "kiln-server: error: %s\n", message.c_str());
  std::exit(1);
}

long long parseInt(const std::string &flag, const char *s) {
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(s, &end, 10);
  if (errno || end == s || *end)
    die(flag + " expects an integer, got '" + s + "'");
  return v;
}

/// JSON text that never throws: invalid UTF-8 (a model may emit any bytes)
/// becomes U+FFFD.
std::string dump(const json &j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void sendError(httplib::Response &res, int status, const std::string &message,
               const std::string &type = "invalid_request_error") {
  res.status = status;
  json body = {{"error",
                {{"message", message}, {"type", type}, {"code", status}}}};
  res.set_content(dump(body), "application/json");
}

/// A request that cannot be served, with its HTTP status.
struct RequestError {
  int status;
  std::string message;
};

struct ServerState {
  rt::Model *model = nullptr;
  SequenceScheduler *scheduler = nullptr;
  std::string modelId;
  int64_t maxRequestBytes = 0;
  std::atomic<uint64_t> nextId{1};
};

/// The request body as a JSON object, or the error to answer with.
bool parseBody(const ServerState &state, const httplib::Request &req,
               json &body, RequestError &error) {
  body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    error = {400, "the request body is not valid JSON"};
    return false;
  }
  if (!body.is_object()) {
    error = {400, "the request body must be a JSON object"};
    return false;
  }
  if (body.contains("model")) {
    if (!body["model"].is_string()) {
      error = {400, "'model' must be a string"};
      return false;
    }
    std::string name = body["model"].get<std::string>();
    if (name != state.modelId) {
      error = {404, "model '" + name + "' does not exist; this server serves '" +
                        state.modelId + "'"};
      return false;
    }
  }
  return true;
}

/// Reads an optional number field into `out`; false with `error` if the
/// field has the wrong type.
template <typename T>
bool readNumber(const json &body, const char *key, T &out,
                RequestError &error) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null())
    return true;
  if (!it->is_number()) {
    error = {400, std::string("'") + key + "' must be a number"};
    return false;
  }
  out = it->get<T>();
  return true;
}

/// What a completion or chat request asks the scheduler for.
struct Generation {
  std::vector<int32_t> prompt;
  int32_t maxTokens = 0;
  rt::SamplingParams sampling;
  bool stream = false;
  bool ignoreEos = false;
};

bool readGeneration(const ServerState &state, const json &body,
                    const std::string &text, Generation &g,
                    RequestError &error) {
  const Tokenizer &tokenizer = state.model->getTokenizer();
  // A new sequence: BOS where the vocabulary wants one; special tokens in
  // the text count as such, as in kiln-run and llama-server.
  g.prompt = tokenizer.encode(text, true, true);
  g.sampling = state.model->getManifest().sampling;
  double temperature = g.sampling.temperature, topP = g.sampling.topP,
         minP = g.sampling.minP, repeatPenalty = g.sampling.repeatPenalty;
  int64_t topK = g.sampling.topK, seed = 0;
  // Absent max_tokens: until end of generation or the sequence's context
  // (at least one, so that a prompt too long gets the context's message).
  int64_t maxTokens = std::max<int64_t>(
      1, state.scheduler->getContextPerSequence() - int64_t(g.prompt.size()));
  if (!readNumber(body, "temperature", temperature, error) ||
      !readNumber(body, "top_p", topP, error) ||
      !readNumber(body, "min_p", minP, error) ||
      !readNumber(body, "top_k", topK, error) ||
      !readNumber(body, "repeat_penalty", repeatPenalty, error) ||
      !readNumber(body, "seed", seed, error) ||
      !readNumber(body, "max_tokens", maxTokens, error))
    return false;
  if (body.contains("max_completion_tokens") &&
      !readNumber(body, "max_completion_tokens", maxTokens, error))
    return false;
  if (maxTokens < 1 || maxTokens > INT32_MAX) {
    error = {400, "max_tokens must be 1 to " + std::to_string(INT32_MAX) +
                      ", got " + std::to_string(maxTokens)};
    return false;
  }
  if (topK < 0 || topK > INT32_MAX) {
    error = {400, "top_k must be >= 0, got " + std::to_string(topK)};
    return false;
  }
  if (body.contains("n") && body["n"] != 1) {
    error = {400, "only n = 1 is supported"};
    return false;
  }
  for (const char *flag : {"stream", "ignore_eos"})
    if (body.contains(flag) && !body[flag].is_boolean()) {
      error = {400, std::string("'") + flag + "' must be true or false"};
      return false;
    }
  g.stream = body.value("stream", false);
  // llama-server's extension: benchmarks generate exactly max_tokens.
  g.ignoreEos = body.value("ignore_eos", false);
  g.maxTokens = int32_t(maxTokens);
  g.sampling.temperature = float(temperature);
  g.sampling.topP = float(topP);
  g.sampling.minP = float(minP);
  g.sampling.topK = int32_t(topK);
  g.sampling.repeatPenalty = float(repeatPenalty);
  g.sampling.seed = uint64_t(seed);
  return true;
}

/// Shapes the JSON of completions and chat completions, whole or in chunks.
struct ResponseShape {
  bool chat;
  std::string id, model;
  int64_t created;

  json base(bool chunk) const {
    const char *object = chat ? (chunk ? "chat.completion.chunk"
                                       : "chat.completion")
                              : "text_completion";
    return {{"id", id}, {"object", object}, {"created", created},
            {"model", model}};
  }
  json choice(const std::string &text, const json &finishReason,
              bool chunk, bool first) const {
    json c = {{"index", 0}, {"finish_reason", finishReason}};
    if (!chat) {
      c["text"] = text;
      c["logprobs"] = nullptr;
    } else if (chunk) {
      json delta = json::object();
      if (first)
        delta["role"] = "assistant";
      if (!text.empty())
        delta["content"] = text;
      c["delta"] = delta;
    } else {
      c["message"] = {{"role", "assistant"}, {"content", text}};
    }
    return c;
  }
};

json usage(const TokenStream::Chunk &c) {
  return {{"prompt_tokens", c.promptTokens},
          {"completion_tokens", c.completionTokens},
          {"total_tokens", c.promptTokens + c.completionTokens}};
}

void answerGeneration(ServerState &state, const json &body,
                      const std::string &text, bool chat,
                      httplib::Response &res) {
  Generation g;
  RequestError error;
  if (!readGeneration(state, body, text, g, error))
    return sendError(res, error.status, error.message);
  std::string err;
  bool busy = false;
  std::shared_ptr<TokenStream> stream = state.scheduler->submit(
      std::move(g.prompt), g.maxTokens, g.sampling, g.ignoreEos, busy, err);
  if (!stream)
    return sendError(res, busy ? 503 : 400, err);
  ResponseShape shape{chat,
                      (chat ? "chatcmpl-" : "cmpl-") +
                          std::to_string(state.nextId++),
                      state.modelId, int64_t(std::time(nullptr))};

  if (!g.stream) {
    // The client waits for the whole text; the sequence runs to its end.
    std::string all;
    TokenStream::Chunk c;
    for (;;) {
      if (!stream->take(c, std::chrono::milliseconds(1000)))
        continue;
      all += c.text;
      if (c.finished)
        break;
    }
    if (!c.error.empty())
      return sendError(res, 500, c.error, "server_error");
    json out = shape.base(false);
    out["choices"] = json::array({shape.choice(all, c.finishReason, false,
                                               false)});
    out["usage"] = usage(c);
    res.set_content(dump(out), "application/json");
    return;
  }

  auto first = std::make_shared<bool>(true);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [stream, shape, first](size_t, httplib::DataSink &sink) {
        auto send = [&](const json &event) {
          std::string line = "data: " + dump(event) + "\n\n";
          return sink.write(line.data(), line.size());
        };
        TokenStream::Chunk c;
        if (!stream->take(c, std::chrono::milliseconds(1000)))
          return sink.is_writable(); // nothing yet; keep waiting
        if (!c.text.empty() || (*first && shape.chat)) {
          json event = shape.base(true);
          event["choices"] =
              json::array({shape.choice(c.text, nullptr, true, *first)});
          *first = false;
          if (!send(event))
            return false; // the client went away: the releaser cancels
        }
        if (!c.finished)
          return true;
        if (!c.error.empty()) {
          json event = {{"error", {{"message", c.error},
                                   {"type", "server_error"},
                                   {"code", 500}}}};
          send(event);
        } else {
          json event = shape.base(true);
          event["choices"] = json::array(
              {shape.choice("", c.finishReason, true, false)});
          event["usage"] = usage(c);
          send(event);
        }
        std::string done = "data: [DONE]\n\n";
        sink.write(done.data(), done.size());
        sink.done();
        return true;
      },
      [stream](bool) { stream->cancel(); });
}

/// The one user message of a chat request, or an error.
bool readChatMessage(const json &body, std::string &text,
                     RequestError &error) {
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array() || it->empty()) {
    error = {400, "'messages' must be a non-empty array"};
    return false;
  }
  // The runtime's chat template renders one user turn (with the model's
  // default system prompt): a conversation needs a general template.
  if (it->size() != 1) {
    error = {400, "only one message is supported (the runtime's chat "
                  "template renders a single user turn), got " +
                      std::to_string(it->size())};
    return false;
  }
  const json &m = it->front();
  if (!m.is_object() || m.value("role", json()) != "user" ||
      !m.contains("content") || !m["content"].is_string()) {
    error = {400, "the message must be {\"role\": \"user\", \"content\": "
                  "\"...\"}"};
    return false;
  }
  text = m["content"].get<std::string>();
  return true;
}

/// The text of a completion request's prompt (a string or one string in an
/// array), or an error.
bool readPrompt(const json &body, std::string &text, RequestError &error) {
  auto it = body.find("prompt");
  if (it != body.end() && it->is_array() && it->size() == 1)
    it = it->begin();
  if (it == body.end() || !it->is_string()) {
    error = {400, "'prompt' must be a string"};
    return false;
  }
  text = it->get<std::string>();
  return true;
}

void installRoutes(httplib::Server &server, ServerState &state) {
  server.Get("/health", [&state](const httplib::Request &,
                                 httplib::Response &res) {
    json out = {{"status", "ok"},
                {"sequences",
                 {{"active", state.scheduler->getActiveSequences()},
                  {"max", state.scheduler->getMaxSequences()}}}};
    res.set_content(dump(out), "application/json");
  });
  server.Get("/v1/models", [&state](const httplib::Request &,
                                    httplib::Response &res) {
    const rt::Manifest &man = state.model->getManifest();
    json model = {{"id", state.modelId},
                  {"object", "model"},
                  {"created", 0},
                  {"owned_by", "kiln"},
                  {"meta",
                   {{"n_ctx_per_sequence",
                     state.scheduler->getContextPerSequence()},
                    {"n_vocab", man.model.nVocab},
                    {"encoder", man.model.encoder}}}};
    json out = {{"object", "list"}, {"data", json::array({model})}};
    res.set_content(dump(out), "application/json");
  });
  server.Post("/v1/completions", [&state](const httplib::Request &req,
                                          httplib::Response &res) {
    json body;
    RequestError error;
    std::string text;
    if (!parseBody(state, req, body, error) || !readPrompt(body, text, error))
      return sendError(res, error.status, error.message);
    answerGeneration(state, body, text, false, res);
  });
  server.Post("/v1/chat/completions", [&state](const httplib::Request &req,
                                               httplib::Response &res) {
    json body;
    RequestError error;
    std::string message, text, err;
    if (!parseBody(state, req, body, error) ||
        !readChatMessage(body, message, error))
      return sendError(res, error.status, error.message);
    if (!state.model->getTokenizer().applyChatTemplate(message, text, err))
      return sendError(res, 400, err);
    answerGeneration(state, body, text, true, res);
  });
  server.Post("/v1/embeddings", [&state](const httplib::Request &req,
                                         httplib::Response &res) {
    json body;
    RequestError error;
    if (!parseBody(state, req, body, error))
      return sendError(res, error.status, error.message);
    std::vector<std::string> inputs;
    auto it = body.find("input");
    if (it != body.end() && it->is_string())
      inputs.push_back(it->get<std::string>());
    else if (it != body.end() && it->is_array() && !it->empty() &&
             std::all_of(it->begin(), it->end(),
                         [](const json &j) { return j.is_string(); }))
      inputs = it->get<std::vector<std::string>>();
    else
      return sendError(res, 400,
                       "'input' must be a string or an array of strings");
    json data = json::array();
    int64_t promptTokens = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<float> embedding;
      int32_t nTokens = 0;
      std::string err;
      if (!state.scheduler->embed(inputs[i], embedding, nTokens, err))
        return sendError(res, 400, err);
      promptTokens += nTokens;
      data.push_back({{"object", "embedding"},
                      {"index", i},
                      {"embedding", embedding}});
    }
    json out = {{"object", "list"},
                {"data", data},
                {"model", state.modelId},
                {"usage",
                 {{"prompt_tokens", promptTokens},
                  {"total_tokens", promptTokens}}}};
    res.set_content(dump(out), "application/json");
  });
  // Errors httplib answers itself (unknown route, body too large) get the
  // same JSON body as the server's own.
  server.set_error_handler([&state](const httplib::Request &req,
                                    httplib::Response &res) {
    if (!res.body.empty())
      return;
    std::string message;
    if (res.status == 413)
      message = "the request body is larger than --max-request-bytes (" +
                std::to_string(state.maxRequestBytes) + " bytes)";
    else if (res.status == 404)
      message = "no route " + req.method + " " + req.path;
    else
      message = "HTTP " + std::to_string(res.status);
    sendError(res, res.status, message);
  });
}

httplib::Server *runningServer = nullptr;

void stopOnSignal(int) {
  if (runningServer)
    runningServer->stop();
}

} // namespace

int main(int argc, char **argv) {
  std::string modelPath, host = "127.0.0.1", alias, device;
  long long port = 8080, threads = 2, maxSequences = 4, ctx = 0,
            maxRequestBytes = 1 << 20;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc)
      die("unknown flag or missing value: '" + a + "' (see --help)");
    const char *v = argv[++i];
    if (a == "-m" || a == "--model")
      modelPath = v;
    else if (a == "--host")
      host = v;
    else if (a == "--port")
      port = parseInt(a, v);
    else if (a == "-t" || a == "--threads")
      threads = parseInt(a, v);
    else if (a == "--max-sequences")
      maxSequences = parseInt(a, v);
    else if (a == "--ctx")
      ctx = parseInt(a, v);
    else if (a == "--max-request-bytes")
      maxRequestBytes = parseInt(a, v);
    else if (a == "--alias")
      alias = v;
    else if (a == "--device")
      device = v;
    else
      die("unknown flag '" + a + "' (see --help)");
  }
  if (modelPath.empty())
    die("no model: pass -m MODEL.kiln (see --help)");
  if (port < 0 || port > 65535)
    die("--port must be 0 to 65535, got " + std::to_string(port));
  if (threads < 1 || threads > 1024)
    die("--threads must be 1 to 1024, got " + std::to_string(threads));
  if (maxSequences < 1 || maxSequences > 4096)
    die("--max-sequences must be 1 to 4096, got " +
        std::to_string(maxSequences));
  if (ctx < 0 || ctx > INT32_MAX)
    die("--ctx must be >= 0 (0 = the model's n_ctx), got " +
        std::to_string(ctx));
  if (maxRequestBytes < 1)
    die("--max-request-bytes must be >= 1, got " +
        std::to_string(maxRequestBytes));
  if (alias.empty()) {
    alias = modelPath.substr(modelPath.find_last_of('/') + 1);
    if (alias.size() > 5 && alias.compare(alias.size() - 5, 5, ".kiln") == 0)
      alias.resize(alias.size() - 5);
  }

  std::string err;
  std::unique_ptr<rt::Model> model =
      rt::Model::load(modelPath, int(threads), device, err);
  if (!model)
    die(err);
  SchedulerLimits limits;
  limits.maxSequences = int32_t(maxSequences);
  limits.contextPerSequence = ctx;
  std::unique_ptr<SequenceScheduler> scheduler =
      SequenceScheduler::create(*model, limits, err);
  if (!scheduler)
    die(err);

  ServerState state;
  state.model = model.get();
  state.scheduler = scheduler.get();
  state.modelId = alias;
  state.maxRequestBytes = maxRequestBytes;

  httplib::Server server;
  // Every generating request holds an HTTP thread while it streams; a few
  // more answer /health and the requests turned away.
  size_t httpThreads = size_t(maxSequences) + 4;
  server.new_task_queue = [httpThreads] {
    return new httplib::ThreadPool(httpThreads);
  };
  server.set_payload_max_length(size_t(maxRequestBytes));
  installRoutes(server, state);

  int bound = port == 0 ? server.bind_to_any_port(host)
                        : (server.bind_to_port(host, int(port)) ? int(port)
                                                                : -1);
  if (bound < 0)
    die("cannot listen on " + host + ":" + std::to_string(port));
  runningServer = &server;
  // A client that goes away is a failed write, not a signal.
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, stopOnSignal);
  std::signal(SIGTERM, stopOnSignal);
  std::fprintf(stderr,
               "kiln-server: %s on %s, %d sequences of %lld tokens (%s), "
               "listening on http://%s:%d\n",
               alias.c_str(), model->getDeviceDescription().c_str(),
               int(maxSequences),
               (long long)scheduler->getContextPerSequence(),
               scheduler->decodesTogether() ? "decoded in shared steps"
                                            : "taking turns",
               host.c_str(), bound);
  bool ok = server.listen_after_bind();
  runningServer = nullptr;
  scheduler.reset();
  return ok ? 0 : 1;
}
