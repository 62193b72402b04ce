//===- Manifest.h - the JSON manifest of a .kiln artifact -------*- C++ -*-===//
//
// The compiler writes the manifest; the runtime parses and validates every
// key it uses before anything runs. Shape:
//   {"format":1,
//    "model":{"arch":"llama","name":s,"n_layers":i,"n_embd":i,"n_heads":i,
//             "n_kv_heads":i,"head_dim":i,"n_vocab":i,"n_ctx":i,
//             "kind":"encoder"},            ("kind" only for encoders)
//    "entry":{"symbol":s,"max_tokens":i,"scratch_bytes":i,"kv_cache_bytes":i},
//    "host":[{"section":s,"cpu_features":[s,...]},...],
//    "weights":{"section":s}, "tokenizer":{"section":s},
//    "sampling":{"temperature":f,"top_k":i,"top_p":f,"min_p":f,
//                "repeat_penalty":f},          ("sampling" is optional)
//    "targets":["cpu"|"cuda",...],                ("targets" is optional: cpu)
//    "cuda":{"kernels":[s,...],                   (with target cuda)
//            "images":[{"format":"cubin"|"ptx","arch":"sm_90a","section":s},...],
//            "symbol":s},                         (optional: entry.symbol)
//    "taps":[{"weights":[s,...],"offset":i,"cols":i},...],   (optional)
//    "distribution":{"tp":i,"pp":i,               (optional: one rank)
//                    "ranks":[{"symbol":s,"scratch_bytes":i},...]},
//    "batch_entry":{"symbol":s,"scratch_bytes":i}} (optional)
//
// "batch_entry" (kiln-compile --batched-step): a step over tokens of several
// sequences, KilnForwardBatchFn of HostABI.h, for a CPU decoder.
//
// "taps" (kiln-compile --calibration-taps): after a step of n tokens, the f32
// input of the linear layers whose weights are named lies in scratch at
// byte `offset`, n rows of `cols` floats (kiln-run --collect-stats).
//
// A distributed artifact (kiln-shard) holds a step function per rank of a
// model group of tp * pp ranks; rank r runs ranks[r] (entry names rank 0's).
//
// A cuda step function has the CPU one's signature (HostABI.h) and only
// launches the kernels, by index into cuda.kernels. An artifact with both
// targets needs two step functions, so its cuda.symbol must differ.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_RUNTIME_MANIFEST_H
#define KILN_RUNTIME_MANIFEST_H

#include "Runtime/Sampler.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::rt {

struct HostVariant {
  std::string section;
  std::vector<std::string> cpuFeatureNames;
  uint64_t cpuFeatures = 0; // KilnCpuFeature bits
};

/// One GPU image: a cubin for one architecture, or PTX the driver compiles.
struct CudaImage {
  enum Format { Cubin, PTX } format = Cubin;
  std::string arch; // "sm_90a": sm_<major><minor>, optional a/f suffix
  int major = 0, minor = 0;
  char suffix = 0; // 'a' (this exact chip), 'f' (family) or 0
  std::string section;
};

/// Where a step leaves one input of linear layers (kiln-run --collect-stats).
struct CalibrationTap {
  std::vector<std::string> weights;
  int64_t offset = 0, cols = 0;
  std::string weightList; // the names, comma-separated (kiln_model_tap)
};

struct Manifest {
  int64_t format = 0;
  struct {
    std::string arch, name;
    int64_t nLayers = 0, nEmbd = 0, nHeads = 0, nKvHeads = 0, headDim = 0,
            nVocab = 0, nCtx = 0;
    bool encoder = false; // "kind": "encoder"
  } model;
  struct {
    std::string symbol;
    int64_t maxTokens = 0, scratchBytes = 0, kvCacheBytes = 0;
  } entry;
  std::vector<HostVariant> host;
  std::string weightsSection;
  std::string tokenizerSection;
  SamplingParams sampling; // defaults when the manifest has none
  bool targetsCpu = true, targetsCuda = false;
  std::vector<std::string> targets; // in the manifest's order of preference
  struct {
    std::vector<std::string> kernels;
    std::vector<CudaImage> images;
    std::string symbol;
  } cuda; // filled when targetsCuda
  std::vector<CalibrationTap> taps;
  struct RankEntry {
    std::string symbol;
    int64_t scratchBytes = 0;
  };
  struct {
    int64_t tp = 1, pp = 1;
    std::vector<RankEntry> ranks; // tp * pp entries, or none
  } distribution;
  /// The step over several sequences; an empty symbol when there is none.
  RankEntry batchEntry;
};

/// Parses and validates `json`. On failure returns false with a one-line
/// message naming the key ("manifest: 'entry.max_tokens' must be ...").
bool parseManifest(std::string_view json, Manifest &out, std::string &err);

} // namespace kiln::rt

#endif // KILN_RUNTIME_MANIFEST_H
