//===- RunTool.cpp - kiln-run's command line ------------------------------===//
//
// llama-cli-like: streams the generated text to stdout and prints prompt and
// generation speed to stderr. Every error is one line on stderr and exit 1.
// kiln-run and the executables of kiln-compile --emit=exe both run it.
//
//===----------------------------------------------------------------------===//

#include "RunTool.h"
#include "CollectStats.h"
#include "Embed.h"
#include "Measure.h"
#include "kiln/runtime/Runtime.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

/// The program in messages: "kiln-run", or an executable's own name.
std::string programName = "kiln-run";

/// --help. An executable with its model built in takes no -m.
std::string usage(const kiln::run::RunTool &tool) {
  bool builtIn = !tool.builtInModel.empty();
  std::string run = builtIn ? tool.name : "kiln-run -m MODEL.kiln";
  return "usage: " + run +
         " -p PROMPT [-n N] [-t THREADS] [--temp F]\n"
         "       [--top-k N] [--top-p F] [--min-p F] [--repeat-penalty F]\n"
         "       [--repeat-last-n N] [--seed N] [--chat] [--ctx N] [--tokenize]\n"
         "       [--device cpu|cuda|cuda:N] [--tp N] [--pp N] [--dp N]\n" +
         (builtIn ? "" : "  -m, --model FILE      compiled model (.kiln)\n") +
         "  -p, --prompt TEXT     prompt; several -p print one line \"[i] text\" "
         "each\n"
         "                        (newlines in the text written as \\n)\n"
         "  -n, --n-predict N     tokens to generate (default 64)\n"
         "  -t, --threads N       threads, 1 to 1024 (default 2)\n"
         "  --device D            cpu, cuda or cuda:N (default: $KILN_DEVICE, else\n"
         "                        the artifact's first target this machine runs)\n"
         "  --temp F              temperature, 0 = greedy (default: the model's)\n"
         "  --top-k N --top-p F --min-p F --repeat-penalty F --repeat-last-n N\n"
         "  --seed N              sampling seed (default 0)\n"
         "  --chat                wrap the prompt in the model's chat template\n"
         "  --ctx N               context size, at most the model's n_ctx\n"
         "  --tokenize            print the prompt's token ids and exit\n"
         "  --tp N --pp N         under mpirun: this process is one of the N ranks\n"
         "                        of an artifact split by kiln-compile --tp/--pp\n"
         "  --dp N                under mpirun: N replicas share the prompts\n"
         "                        (mpirun -np dp * tp * pp)\n"
         "\n"
         "       " +
         run +
         " --bench [-p N] [-n N] [-r N] [-t N] [-o md|json]\n"
         "  --bench               llama-bench-like: prompt processing of -p tokens\n"
         "                        (default 512) and generation of -n tokens (default\n"
         "                        128), tok/s mean +/- stddev over -r runs (default 5)\n"
         "\n"
         "       " +
         run +
         " --perplexity FILE [--ctx N] [--chunks N] [-t N]\n"
         "  --perplexity FILE     llama-perplexity-like: PPL of FILE in chunks of --ctx\n"
         "                        tokens (default min(512, n_ctx)), +/- its standard error\n"
         "\n"
         "       " +
         run +
         " --embed TEXT | --embed-file FILE [-t N]\n"
         "  --embed TEXT          an encoder's sentence embedding of TEXT: one line of\n"
         "                        n_embd numbers\n"
         "  --embed-file FILE     the same for each line of FILE, one line each\n"
         "\n"
         "       " +
         run +
         " --collect-stats TEXT -o OUT.kstats [--teacher T.kiln] [--ctx N]\n"
         "         [--chunks N] [-t N]\n"
         "  --collect-stats TEXT  calibration: run an artifact compiled with\n"
         "                        --calibration-taps on TEXT in chunks of --ctx\n"
         "                        tokens and write its linear layers' input\n"
         "                        statistics (CalibrationStats.h) to OUT\n"
         "  --teacher T.kiln      run the uncompressed teacher (also with taps)\n"
         "                        beside the model and add the cross moments of\n"
         "                        their inputs (kiln-distill does not use them:\n"
         "                        its student-input fit needs the model's H only)\n";
}

[[noreturn]] void die(const std::string &message) {
  std::fprintf(stderr, "%s: error: %s\n", programName.c_str(),
               message.c_str());
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

unsigned long long parseU64(const std::string &flag, const char *s) {
  errno = 0;
  char *end = nullptr;
  if (*s == '-')
    die(flag + " expects a non-negative integer, got '" + s + "'");
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno || end == s || *end)
    die(flag + " expects a non-negative integer, got '" + s + "'");
  return v;
}

float parseFloat(const std::string &flag, const char *s) {
  errno = 0;
  char *end = nullptr;
  float v = std::strtof(s, &end);
  if (errno || end == s || *end || !std::isfinite(v))
    die(flag + " expects a number, got '" + s + "'");
  return v;
}

int onPiece(const char *piece, size_t size, void *) {
  std::fwrite(piece, 1, size, stdout);
  std::fflush(stdout);
  return 0;
}

/// Collects a generation's pieces (several prompts: one line each).
int collectPiece(const char *piece, size_t size, void *text) {
  static_cast<std::string *>(text)->append(piece, size);
  return 0;
}

/// The other ranks of a tensor- or pipeline-parallel replica compute the
/// same tokens; only its rank 0 prints them.
int dropPiece(const char *, size_t, void *) { return 0; }

/// --bench and --perplexity: their own argument checks, then the runs.
int measure(const std::string &modelPath, const std::string &device, bool bench,
            bool perplexity, bool havePrompt, const std::string &prompt,
            long long nPredict, bool setNPredict, long long threads,
            long long ctx, long long repetitions, bool setRepetitions,
            const std::string &output, const std::string &perplexityFile,
            long long chunks, bool setChunks) {
  if (bench && perplexity)
    die("--bench and --perplexity cannot be combined");
  if (threads < 1 || threads > 1024)
    die("-t must be 1 to 1024, got " + std::to_string(threads));
  kiln::run::BenchOptions b;
  kiln::run::PerplexityOptions p;
  if (bench) {
    if (havePrompt) {
      long long n = parseInt("-p", prompt.c_str());
      if (n < 0 || n > INT32_MAX)
        die("--bench: -p must be >= 0 prompt tokens, got " + std::to_string(n));
      b.nPrompt = int(n);
    }
    if (setNPredict) {
      if (nPredict < 0 || nPredict > INT32_MAX)
        die("--bench: -n must be >= 0 tokens, got " + std::to_string(nPredict));
      b.nGen = int(nPredict);
    }
    if (b.nPrompt == 0 && b.nGen == 0)
      die("--bench: -p and -n are both 0, nothing to measure");
    if (repetitions < 1 || repetitions > 1000000)
      die("-r must be >= 1, got " + std::to_string(repetitions));
    if (!output.empty() && output != "md" && output != "json")
      die("-o must be md or json, got '" + output + "'");
    if (setChunks || ctx)
      die("--chunks and --ctx only apply to --perplexity");
    b.modelPath = modelPath;
    b.repetitions = int(repetitions);
    b.threads = int(threads);
    b.json = output == "json";
  } else {
    if (havePrompt || setNPredict || setRepetitions || !output.empty())
      die("--perplexity reads its text from FILE: -p, -n, -r and -o do not "
          "apply");
    if (ctx < 0 || ctx == 1 || ctx > INT32_MAX)
      die("--ctx must be >= 2 tokens per chunk (0 = min(512, n_ctx)), got " +
          std::to_string(ctx));
    if (chunks < 0 || chunks > INT32_MAX)
      die("--chunks must be >= 0 (0 = all), got " + std::to_string(chunks));
    p.textPath = perplexityFile;
    p.programName = programName;
    p.nCtx = int(ctx);
    p.maxChunks = int(chunks);
  }
  const char *err = nullptr;
  kiln_model *model = nullptr;
  if (kiln_model_load_on(modelPath.c_str(), int32_t(threads), device.c_str(),
                         &model, &err))
    die(err);
  std::string why;
  bool ok = bench ? kiln::run::runBench(model, b, why)
                  : kiln::run::runPerplexity(model, p, why);
  kiln_model_free(model);
  if (!ok)
    die(why);
  return 0;
}

} // namespace

int kiln::run::runCommandLine(int argc, char **argv, const RunTool &tool) {
  std::vector<std::string> prompts;
  long long tp = 1, pp = 1, dp = 1;
  bool distributed = false;
  programName = tool.name;
  std::string modelPath = tool.builtInModel, prompt, device;
  bool havePrompt = false, tokenizeOnly = false, chat = false;
  long long nPredict = 64, threads = 2, ctx = 0;
  // Flags given on the command line override the model's defaults.
  bool setTemp = false, setTopK = false, setTopP = false, setMinP = false,
       setPenalty = false, setLastN = false;
  float temp = 0, topP = 0, minP = 0, penalty = 0;
  long long topK = 0, lastN = 0;
  unsigned long long seed = 0;
  bool bench = false, perplexity = false, setRepetitions = false,
       setChunks = false, setNPredict = false;
  long long repetitions = 5, chunks = 0;
  std::string output, perplexityFile;
  std::vector<std::string> embedTexts;
  std::string embedFile, statsText, teacherPath;
  bool embed = false, collectStats = false;

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage(tool).c_str(), stdout);
      return 0;
    }
    if (a == "--chat") {
      chat = true;
      continue;
    }
    if (a == "--tokenize") {
      tokenizeOnly = true;
      continue;
    }
    if (a == "--bench") {
      bench = true;
      continue;
    }
    static const char *const kWithValue[] = {"-m",
                                             "--model",
                                             "-p",
                                             "--prompt",
                                             "-n",
                                             "--n-predict",
                                             "-t",
                                             "--threads",
                                             "--temp",
                                             "--top-k",
                                             "--top-p",
                                             "--min-p",
                                             "--repeat-penalty",
                                             "--repeat-last-n",
                                             "--seed",
                                             "--ctx",
                                             "-r",
                                             "--repetitions",
                                             "-o",
                                             "--output",
                                             "--perplexity",
                                             "--chunks",
                                             "--device",
                                             "--embed",
                                             "--embed-file",
                                             "--collect-stats",
                                             "--teacher",
                                             "--tp",
                                             "--pp",
                                             "--dp"};
    bool known = false;
    for (const char *f : kWithValue)
      known |= a == f;
    if (!known)
      die("unknown flag '" + a + "' (see " + programName + " --help)");
    if (i + 1 >= argc)
      die(a + " expects a value");
    const char *v = argv[++i];
    if ((a == "-m" || a == "--model") && !tool.builtInModel.empty())
      die("the model is built into " + programName + ": " + a +
          " does not apply");
    if (a == "-m" || a == "--model")
      modelPath = v;
    else if (a == "-p" || a == "--prompt")
      prompt = v, havePrompt = true, prompts.push_back(v);
    else if (a == "-n" || a == "--n-predict")
      nPredict = parseInt(a, v), setNPredict = true;
    else if (a == "-t" || a == "--threads")
      threads = parseInt(a, v);
    else if (a == "--temp")
      temp = parseFloat(a, v), setTemp = true;
    else if (a == "--top-k")
      topK = parseInt(a, v), setTopK = true;
    else if (a == "--top-p")
      topP = parseFloat(a, v), setTopP = true;
    else if (a == "--min-p")
      minP = parseFloat(a, v), setMinP = true;
    else if (a == "--repeat-penalty")
      penalty = parseFloat(a, v), setPenalty = true;
    else if (a == "--repeat-last-n")
      lastN = parseInt(a, v), setLastN = true;
    else if (a == "--seed")
      seed = parseU64(a, v);
    else if (a == "--ctx")
      ctx = parseInt(a, v);
    else if (a == "-r" || a == "--repetitions")
      repetitions = parseInt(a, v), setRepetitions = true;
    else if (a == "-o" || a == "--output")
      output = v;
    else if (a == "--perplexity")
      perplexityFile = v, perplexity = true;
    else if (a == "--chunks")
      chunks = parseInt(a, v), setChunks = true;
    else if (a == "--device")
      device = v;
    else if (a == "--embed")
      embedTexts.push_back(v), embed = true;
    else if (a == "--embed-file")
      embedFile = v, embed = true;
    else if (a == "--collect-stats")
      statsText = v, collectStats = true;
    else if (a == "--teacher")
      teacherPath = v;
    else if (a == "--tp")
      tp = parseInt(a, v), distributed = true;
    else if (a == "--pp")
      pp = parseInt(a, v), distributed = true;
    else if (a == "--dp")
      dp = parseInt(a, v), distributed = true;
  }
  if (distributed && (embed || bench || perplexity || tokenizeOnly))
    die("--tp, --pp and --dp apply to generation only");
  using Count = std::pair<const char *, long long>;
  for (auto [flag, n] : {Count{"--tp", tp}, Count{"--pp", pp}, Count{"--dp", dp}})
    if (n < 1 || n > 4096)
      die(std::string(flag) + " must be 1 to 4096, got " + std::to_string(n));
  if (!teacherPath.empty() && !collectStats)
    die("--teacher goes with --collect-stats");
  if (collectStats) {
    if (modelPath.empty())
      die("no model given (-m MODEL.kiln)");
    if (bench || perplexity || embed || havePrompt || tokenizeOnly || chat ||
        setNPredict || setRepetitions)
      die("--collect-stats reads its text from a file and takes only -m, -o, "
          "--teacher, --ctx, --chunks and -t");
    if (output.empty())
      die("--collect-stats needs -o FILE for the statistics");
    if (threads < 1 || threads > 1024)
      die("-t must be 1 to 1024, got " + std::to_string(threads));
    if (ctx < 0 || ctx > INT32_MAX)
      die("--ctx must be >= 1 tokens per chunk (0 = min(512, n_ctx)), got " +
          std::to_string(ctx));
    if (chunks < 0 || chunks > INT32_MAX)
      die("--chunks must be >= 0 (0 = all), got " + std::to_string(chunks));
    kiln::run::CollectStatsOptions c;
    c.textPath = statsText;
    c.outputPath = output;
    c.nCtx = int(ctx);
    c.maxChunks = int(chunks);
    const char *err = nullptr;
    kiln_model *model = nullptr;
    if (kiln_model_load_on(modelPath.c_str(), int32_t(threads), "cpu", &model,
                           &err))
      die(err);
    kiln_model *teacher = nullptr;
    if (!teacherPath.empty() &&
        kiln_model_load_on(teacherPath.c_str(), int32_t(threads), "cpu",
                           &teacher, &err)) {
      kiln_model_free(model);
      die(err);
    }
    std::string why;
    bool ok = kiln::run::collectStatistics(model, teacher, c, why);
    kiln_model_free(model);
    if (teacher)
      kiln_model_free(teacher);
    if (!ok)
      die(why);
    return 0;
  }
  if (embed) {
    if (modelPath.empty())
      die("no model given (-m MODEL.kiln)");
    if (bench || perplexity || havePrompt || tokenizeOnly || chat)
      die("--embed and --embed-file take no prompt, --bench, --perplexity, "
          "--tokenize or --chat");
    if (threads < 1 || threads > 1024)
      die("-t must be 1 to 1024, got " + std::to_string(threads));
    std::string why;
    if (!embedFile.empty() && !kiln::run::readLines(embedFile, embedTexts, why))
      die(why);
    const char *err = nullptr;
    kiln_model *model = nullptr;
    if (kiln_model_load(modelPath.c_str(), int32_t(threads), &model, &err))
      die(err);
    bool ok = kiln::run::runEmbed(model, embedTexts, why);
    kiln_model_free(model);
    if (!ok)
      die(why);
    return 0;
  }
  if (bench || perplexity) {
    if (modelPath.empty())
      die("no model given (-m MODEL.kiln)");
    return measure(modelPath, device, bench, perplexity, havePrompt, prompt,
                   nPredict, setNPredict, threads, ctx, repetitions,
                   setRepetitions, output, perplexityFile, chunks, setChunks);
  }
  if (setRepetitions || !output.empty() || setChunks)
    die("-r, -o and --chunks only apply to --bench or --perplexity");

  // Arguments are checked before the (possibly large) model is read.
  if (modelPath.empty())
    die("no model given (-m MODEL.kiln)");
  if (!havePrompt)
    die("no prompt given (-p PROMPT)");
  if (nPredict <= 0 || nPredict > INT32_MAX)
    die("-n must be > 0, got " + std::to_string(nPredict));
  if (threads < 1 || threads > 1024)
    die("-t must be 1 to 1024, got " + std::to_string(threads));
  if (ctx < 0 || ctx > INT32_MAX)
    die("--ctx must be >= 0 (0 = the model's), got " + std::to_string(ctx));
  if (setTopK && (topK < 0 || topK > INT32_MAX))
    die("--top-k must be >= 0, got " + std::to_string(topK));
  if (setLastN && (lastN < 0 || lastN > INT32_MAX))
    die("--repeat-last-n must be >= 0, got " + std::to_string(lastN));

  const char *err = nullptr;
  kiln_model *model = nullptr;
  if (kiln_model_load_on(modelPath.c_str(), int32_t(threads), device.c_str(),
                         &model, &err))
    die(err);

  if (tokenizeOnly) {
    std::vector<int32_t> ids(prompt.size() + 16);
    size_t n = 0;
    if (kiln_tokenize(model, prompt.c_str(), 1, 1, ids.data(), ids.size(), &n,
                      &err))
      die(err);
    if (n > ids.size()) {
      ids.resize(n);
      if (kiln_tokenize(model, prompt.c_str(), 1, 1, ids.data(), ids.size(), &n,
                        &err))
        die(err);
    }
    for (size_t i = 0; i < n; ++i)
      std::printf("%s%d", i ? " " : "", ids[i]);
    std::printf("\n");
    kiln_model_free(model);
    return 0;
  }

  kiln_generate_params params;
  kiln_model_default_params(model, &params);
  params.n_predict = int32_t(nPredict);
  params.chat = chat;
  params.sampling.seed = seed;
  if (setTemp)
    params.sampling.temperature = temp;
  if (setTopK)
    params.sampling.top_k = int32_t(topK);
  if (setTopP)
    params.sampling.top_p = topP;
  if (setMinP)
    params.sampling.min_p = minP;
  if (setPenalty)
    params.sampling.repeat_penalty = penalty;
  if (setLastN)
    params.sampling.repeat_last_n = int32_t(lastN);

  if (distributed && kiln_model_distribute(model, int32_t(tp), int32_t(pp),
                                            int32_t(dp), &err))
    die(err);
  bool printer = kiln_model_rank(model) == 0;
  int32_t replica = kiln_model_replica(model);

  kiln_session *session = nullptr;
  if (kiln_session_create(model, int32_t(ctx), &session, &err))
    die(err);
  // Replica r takes prompts r, r + dp, ...; all ranks of a replica step
  // through the same ones.
  kiln_generate_stats stats{}, one;
  for (size_t i = replica; i < prompts.size(); i += size_t(dp)) {
    std::string text;
    kiln_piece_callback callback =
        !printer ? dropPiece : prompts.size() > 1 ? collectPiece : onPiece;
    kiln_session_reset(session);
    if (kiln_generate(session, prompts[i].c_str(), &params, callback, &text,
                      &one, &err))
      die(err);
    if (printer && prompts.size() > 1) {
      // One line per prompt, written at once, so replicas' lines do not
      // interleave (mpirun forwards line by line): newlines and
      // backslashes in the text are escaped.
      std::string line = "[" + std::to_string(i) + "] ";
      for (char c : text)
        line += c == '\n' ? std::string("\\n")
                : c == '\\' ? std::string("\\\\")
                              : std::string(1, c);
      line += "\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
    } else if (printer) {
      std::printf("\n");
    }
    std::fflush(stdout);
    stats.n_prompt += one.n_prompt;
    stats.prompt_seconds += one.prompt_seconds;
    stats.n_generated += one.n_generated;
    stats.generate_seconds += one.generate_seconds;
    stats.stopped_at_eog = one.stopped_at_eog;
  }
  if (!printer) {
    kiln_session_free(session);
    kiln_model_free(model);
    return 0;
  }

  auto rate = [](int n, double s) { return s > 0 ? n / s : 0.0; };
  std::string on = kiln_model_device(model);
  std::string placement =
      on == "cpu" ? std::to_string(threads) + " threads" : "on " + on;
  std::fprintf(stderr,
               "%s: host code %s, %s\n"
               "%s: prompt: %d tokens in %.3f s (%.2f tokens/s)\n"
               "%s: generation: %d tokens in %.3f s (%.2f tokens/s)%s\n",
               programName.c_str(), kiln_model_host_variant(model),
               placement.c_str(), programName.c_str(), stats.n_prompt,
               stats.prompt_seconds, rate(stats.n_prompt, stats.prompt_seconds),
               programName.c_str(), stats.n_generated, stats.generate_seconds,
               rate(stats.n_generated, stats.generate_seconds),
               stats.stopped_at_eog ? ", stopped at end of generation" : "");
  if (distributed) {
    int tokens = stats.n_prompt + stats.n_generated;
    double seconds = kiln_model_comm_seconds(model);
    std::fprintf(stderr,
                 "kiln-run: replica %d of %lld (tp %lld, pp %lld): "
                 "communication %.3f s in %lld exchanges, %.3f ms per "
                 "token\n",
                 replica, dp, tp, pp, seconds,
                 (long long)kiln_model_comm_calls(model),
                 tokens ? 1e3 * seconds / tokens : 0.0);
  }
  kiln_session_free(session);
  kiln_model_free(model);
  return 0;
}
