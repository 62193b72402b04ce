//===- Manifest.cpp - parse and validate an artifact manifest -------------===//
//
// nlohmann::json reports type errors with exceptions; this file is built with
// -fexceptions and catches every one of them, so none crosses the library
// boundary. Types are checked explicitly first so messages name the key.
//
//===----------------------------------------------------------------------===//

#include "Runtime/Manifest.h"

#include "kiln/runtime/Artifact.h"

#include <cmath>
#include <nlohmann/json.hpp>

using namespace kiln::rt;
using nlohmann::json;

namespace {
/// What Reader::fail returns: false for bool functions, nullptr for lookups.
struct Failure {
  operator bool() const { return false; }
  template <typename T> operator T *() const { return nullptr; }
};

class Reader {
public:
  explicit Reader(std::string &err) : err(err) {}

  const json *object(const json &parent, const char *key,
                     const std::string &path) {
    const json *v = find(parent, key, path);
    if (v && !v->is_object())
      return fail(path, "must be an object");
    return v;
  }

  bool string(const json &parent, const char *key, const std::string &path,
              std::string &out) {
    const json *v = find(parent, key, path);
    if (!v)
      return false;
    if (!v->is_string() || v->get_ref<const std::string &>().empty())
      return fail(path, "must be a non-empty string");
    out = v->get<std::string>();
    return true;
  }

  /// An integer in [lo, hi].
  bool integer(const json &parent, const char *key, const std::string &path,
               int64_t lo, int64_t hi, int64_t &out) {
    const json *v = find(parent, key, path);
    if (!v)
      return false;
    if (!v->is_number_integer() ||
        (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX)))
      return fail(path, "must be an integer");
    out = v->get<int64_t>();
    if (out < lo || out > hi)
      return fail(path, "is " + std::to_string(out) + ", expected " +
                            std::to_string(lo) + " to " + std::to_string(hi));
    return true;
  }

  bool number(const json &parent, const char *key, const std::string &path,
              float &out) {
    const json *v = find(parent, key, path);
    if (!v)
      return false;
    if (!v->is_number())
      return fail(path, "must be a number");
    double d = v->get<double>();
    if (!std::isfinite(d))
      return fail(path, "must be finite");
    out = static_cast<float>(d);
    return true;
  }

  Failure fail(const std::string &path, const std::string &what) {
    err = "manifest: '" + path + "' " + what;
    return {};
  }

private:
  const json *find(const json &parent, const char *key,
                   const std::string &path) {
    auto it = parent.find(key);
    if (it == parent.end())
      return fail(path, "is missing");
    return &*it;
  }

  std::string &err;
};
} // namespace

static bool parseManifestJSON(const json &root, Manifest &m, std::string &err) {
  Reader r(err);
  if (!root.is_object())
    return r.fail("(root)", "must be an object");
  if (!r.integer(root, "format", "format", 1, 1, m.format))
    return false;

  // Bounds are generous sanity limits: they reject nonsense (negative sizes,
  // overflow bait) without constraining any real model.
  constexpr int64_t kMaxDim = int64_t(1) << 24;
  constexpr int64_t kMaxBytes = int64_t(1) << 46;
  const json *model = r.object(root, "model", "model");
  if (!model || !r.string(*model, "arch", "model.arch", m.model.arch) ||
      !r.string(*model, "name", "model.name", m.model.name) ||
      !r.integer(*model, "n_layers", "model.n_layers", 1, 4096,
                 m.model.nLayers) ||
      !r.integer(*model, "n_embd", "model.n_embd", 1, kMaxDim, m.model.nEmbd) ||
      !r.integer(*model, "n_heads", "model.n_heads", 1, 65536,
                 m.model.nHeads) ||
      !r.integer(*model, "n_kv_heads", "model.n_kv_heads", 1, 65536,
                 m.model.nKvHeads) ||
      !r.integer(*model, "head_dim", "model.head_dim", 1, 65536,
                 m.model.headDim) ||
      !r.integer(*model, "n_vocab", "model.n_vocab", 1, kMaxDim,
                 m.model.nVocab) ||
      !r.integer(*model, "n_ctx", "model.n_ctx", 1, kMaxDim, m.model.nCtx))
    return false;
  // An encoder's step returns its sentence embedding ([1, n_embd]) instead
  // of logits; decoders leave "kind" out.
  if (auto kind = model->find("kind"); kind != model->end()) {
    if (!kind->is_string() || (*kind != "encoder" && *kind != "decoder"))
      return r.fail("model.kind", "must be \"encoder\" or \"decoder\"");
    m.model.encoder = *kind == "encoder";
  }

  const json *entry = r.object(root, "entry", "entry");
  if (!entry || !r.string(*entry, "symbol", "entry.symbol", m.entry.symbol) ||
      !r.integer(*entry, "max_tokens", "entry.max_tokens", 1, 1 << 20,
                 m.entry.maxTokens) ||
      !r.integer(*entry, "scratch_bytes", "entry.scratch_bytes", 0, kMaxBytes,
                 m.entry.scratchBytes) ||
      !r.integer(*entry, "kv_cache_bytes", "entry.kv_cache_bytes", 0, kMaxBytes,
                 m.entry.kvCacheBytes))
    return false;

  auto host = root.find("host");
  if (host == root.end())
    return r.fail("host", "is missing");
  if (!host->is_array() || host->empty())
    return r.fail("host", "must be a non-empty array");
  for (size_t i = 0; i < host->size(); ++i) {
    const json &h = (*host)[i];
    std::string path = "host[" + std::to_string(i) + "]";
    if (!h.is_object())
      return r.fail(path, "must be an object");
    HostVariant v;
    if (!r.string(h, "section", path + ".section", v.section))
      return false;
    auto feats = h.find("cpu_features");
    if (feats == h.end())
      return r.fail(path + ".cpu_features", "is missing");
    if (!feats->is_array())
      return r.fail(path + ".cpu_features", "must be an array of strings");
    for (const json &f : *feats) {
      if (!f.is_string())
        return r.fail(path + ".cpu_features", "must be an array of strings");
      std::string name = f.get<std::string>();
      uint64_t bit = kiln::cpuFeatureFromName(name.c_str());
      if (!bit)
        return r.fail(path + ".cpu_features",
                      "names unknown CPU feature '" + name + "'");
      v.cpuFeatureNames.push_back(name);
      v.cpuFeatures |= bit;
    }
    m.host.push_back(std::move(v));
  }

  const json *weights = r.object(root, "weights", "weights");
  if (!weights ||
      !r.string(*weights, "section", "weights.section", m.weightsSection))
    return false;
  const json *tok = r.object(root, "tokenizer", "tokenizer");
  if (!tok ||
      !r.string(*tok, "section", "tokenizer.section", m.tokenizerSection))
    return false;

  if (root.contains("sampling")) {
    const json *s = r.object(root, "sampling", "sampling");
    if (!s)
      return false;
    SamplingParams &p = m.sampling;
    int64_t topK = p.topK;
    if ((s->contains("temperature") &&
         !r.number(*s, "temperature", "sampling.temperature", p.temperature)) ||
        (s->contains("top_k") &&
         !r.integer(*s, "top_k", "sampling.top_k", 0, INT32_MAX, topK)) ||
        (s->contains("top_p") &&
         !r.number(*s, "top_p", "sampling.top_p", p.topP)) ||
        (s->contains("min_p") &&
         !r.number(*s, "min_p", "sampling.min_p", p.minP)) ||
        (s->contains("repeat_penalty") &&
         !r.number(*s, "repeat_penalty", "sampling.repeat_penalty",
                   p.repeatPenalty)))
      return false;
    p.topK = static_cast<int32_t>(topK);
    std::string why;
    if (!validateSamplingParams(p, why))
      return r.fail("sampling", "is invalid: " + why);
  }
  return true;
}

bool kiln::rt::parseManifest(std::string_view text, Manifest &out,
                             std::string &err) {
  Manifest m;
  try {
    json root = json::parse(text.begin(), text.end());
    if (!parseManifestJSON(root, m, err))
      return false;
  } catch (const json::exception &e) {
    // e.what() is one line, e.g. "[json.exception.parse_error.101] parse
    // error at line 1, column 5: ...".
    err = std::string("manifest: invalid JSON: ") + e.what();
    return false;
  }
  out = std::move(m);
  return true;
}
