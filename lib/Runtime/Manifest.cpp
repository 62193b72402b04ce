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

/// "sm_90a" -> 9, 0, 'a'. The last digit is the minor version, the digits
/// before it the major (sm_100 is 10.0), as nvcc names them.
static bool parseCudaArch(const std::string &arch, CudaImage &image) {
  if (arch.size() < 5 || arch.compare(0, 3, "sm_") != 0)
    return false;
  size_t end = arch.size();
  char suffix = 0;
  if (arch.back() == 'a' || arch.back() == 'f')
    suffix = arch[--end];
  std::string digits = arch.substr(3, end - 3);
  if (digits.size() < 2 || digits.size() > 3 ||
      digits.find_first_not_of("0123456789") != std::string::npos ||
      digits[0] == '0')
    return false;
  image.major = std::stoi(digits.substr(0, digits.size() - 1));
  image.minor = digits.back() - '0';
  image.suffix = suffix;
  return true;
}

/// "taps": each a whole [max_tokens, cols] f32 block inside scratch.
static bool parseTaps(const json &root, Manifest &m, Reader &r) {
  auto taps = root.find("taps");
  if (taps == root.end())
    return true;
  if (!taps->is_array())
    return r.fail("taps", "must be an array");
  for (size_t i = 0; i < taps->size(); ++i) {
    const json &t = (*taps)[i];
    std::string path = "taps[" + std::to_string(i) + "]";
    if (!t.is_object())
      return r.fail(path, "must be an object");
    CalibrationTap tap;
    auto weights = t.find("weights");
    if (weights == t.end() || !weights->is_array() || weights->empty())
      return r.fail(path + ".weights", "must be a non-empty array of strings");
    for (const json &w : *weights) {
      if (!w.is_string() || w.get_ref<const std::string &>().empty())
        return r.fail(path + ".weights",
                      "must be a non-empty array of strings");
      tap.weights.push_back(w.get<std::string>());
      tap.weightList += (tap.weightList.empty() ? "" : ",") + tap.weights.back();
    }
    if (!r.integer(t, "offset", path + ".offset", 0, m.entry.scratchBytes,
                   tap.offset) ||
        !r.integer(t, "cols", path + ".cols", 1, 1 << 20, tap.cols))
      return false;
    if ((m.entry.scratchBytes - tap.offset) / 4 / tap.cols < m.entry.maxTokens)
      return r.fail(path, "ends past entry.scratch_bytes");
    m.taps.push_back(std::move(tap));
  }
  return true;
}

/// "targets" and, when it names cuda, the "cuda" object.
static bool parseTargets(const json &root, Manifest &m, Reader &r) {
  auto targets = root.find("targets");
  if (targets != root.end()) {
    if (!targets->is_array() || targets->empty())
      return r.fail("targets", "must be a non-empty array of \"cpu\" and "
                               "\"cuda\"");
    m.targetsCpu = false;
    for (const json &t : *targets) {
      std::string name = t.is_string() ? t.get<std::string>() : std::string();
      if (name != "cpu" && name != "cuda")
        return r.fail("targets", "must be a non-empty array of \"cpu\" and "
                                 "\"cuda\"");
      bool &seen = name == "cpu" ? m.targetsCpu : m.targetsCuda;
      if (seen)
        return r.fail("targets", "names '" + name + "' twice");
      seen = true;
      m.targets.push_back(name);
    }
  } else {
    m.targets = {"cpu"};
  }
  if (!m.targetsCuda) {
    if (root.contains("cuda"))
      return r.fail("cuda", "is given but 'targets' does not name cuda");
    return true;
  }

  const json *cuda = r.object(root, "cuda", "cuda");
  if (!cuda)
    return false;
  auto kernels = cuda->find("kernels");
  if (kernels == cuda->end())
    return r.fail("cuda.kernels", "is missing");
  if (!kernels->is_array() || kernels->empty())
    return r.fail("cuda.kernels", "must be a non-empty array of kernel names");
  for (size_t i = 0; i < kernels->size(); ++i) {
    const json &k = (*kernels)[i];
    std::string path = "cuda.kernels[" + std::to_string(i) + "]";
    if (!k.is_string() || k.get_ref<const std::string &>().empty())
      return r.fail(path, "must be a non-empty string");
    m.cuda.kernels.push_back(k.get<std::string>());
  }

  auto images = cuda->find("images");
  if (images == cuda->end())
    return r.fail("cuda.images", "is missing");
  if (!images->is_array() || images->empty())
    return r.fail("cuda.images", "must be a non-empty array");
  for (size_t i = 0; i < images->size(); ++i) {
    const json &im = (*images)[i];
    std::string path = "cuda.images[" + std::to_string(i) + "]";
    if (!im.is_object())
      return r.fail(path, "must be an object");
    CudaImage image;
    std::string format;
    if (!r.string(im, "format", path + ".format", format) ||
        !r.string(im, "arch", path + ".arch", image.arch) ||
        !r.string(im, "section", path + ".section", image.section))
      return false;
    if (format != "cubin" && format != "ptx")
      return r.fail(path + ".format",
                    "is '" + format + "', expected \"cubin\" or \"ptx\"");
    image.format = format == "ptx" ? CudaImage::PTX : CudaImage::Cubin;
    if (!parseCudaArch(image.arch, image))
      return r.fail(path + ".arch", "is '" + image.arch +
                                        "', expected sm_<major><minor> with "
                                        "an optional a or f (\"sm_90a\")");
    m.cuda.images.push_back(std::move(image));
  }

  m.cuda.symbol = m.entry.symbol;
  if (cuda->contains("symbol") &&
      !r.string(*cuda, "symbol", "cuda.symbol", m.cuda.symbol))
    return false;
  if (m.targetsCpu && m.cuda.symbol == m.entry.symbol)
    return r.fail("cuda.symbol", "must name a step function other than "
                                 "entry.symbol when targets has cpu and cuda");
  return true;
}

/// "distribution": the step function of each rank of a model group.
static bool parseDistribution(const json &root, Manifest &m, Reader &r) {
  if (!root.contains("distribution"))
    return true;
  const json *d = r.object(root, "distribution", "distribution");
  auto &dist = m.distribution;
  if (!d || !r.integer(*d, "tp", "distribution.tp", 1, 4096, dist.tp) ||
      !r.integer(*d, "pp", "distribution.pp", 1, 4096, dist.pp))
    return false;
  auto ranks = d->find("ranks");
  if (ranks == d->end())
    return r.fail("distribution.ranks", "is missing");
  if (!ranks->is_array() || int64_t(ranks->size()) != dist.tp * dist.pp)
    return r.fail("distribution.ranks",
                  "must be an array of tp * pp = " +
                      std::to_string(dist.tp * dist.pp) + " objects");
  for (size_t i = 0; i < ranks->size(); ++i) {
    const json &entry = (*ranks)[i];
    std::string path = "distribution.ranks[" + std::to_string(i) + "]";
    Manifest::RankEntry rank;
    if (!entry.is_object())
      return r.fail(path, "must be an object");
    if (!r.string(entry, "symbol", path + ".symbol", rank.symbol) ||
        !r.integer(entry, "scratch_bytes", path + ".scratch_bytes", 0,
                   int64_t(1) << 46, rank.scratchBytes))
      return false;
    dist.ranks.push_back(std::move(rank));
  }
  if (m.targetsCuda)
    return r.fail("distribution", "is for CPU artifacts only");
  return true;
}

/// "batch_entry": the step over tokens of several sequences.
static bool parseBatchEntry(const json &root, Manifest &m, Reader &r) {
  if (!root.contains("batch_entry"))
    return true;
  const json *e = r.object(root, "batch_entry", "batch_entry");
  if (!e || !r.string(*e, "symbol", "batch_entry.symbol", m.batchEntry.symbol) ||
      !r.integer(*e, "scratch_bytes", "batch_entry.scratch_bytes", 0,
                 int64_t(1) << 46, m.batchEntry.scratchBytes))
    return false;
  if (m.targetsCuda || m.model.encoder || !m.distribution.ranks.empty())
    return r.fail("batch_entry", "is for CPU decoders of one rank only");
  return true;
}

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

  if (!parseTargets(root, m, r) || !parseDistribution(root, m, r) ||
      !parseBatchEntry(root, m, r))
    return false;
  if (!parseTaps(root, m, r))
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
