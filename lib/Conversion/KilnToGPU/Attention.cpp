//===- Attention.cpp - kiln.attention over the KV cache -------------------===//
//
// Two kernels, in stream order: one appends the T new keys and values to the
// cache ([2 (keys, values)][layers][context][kv_heads][head_dim] f32, the
// CPU lowering's layout), then one block per (token, head) attends over the
// visible positions. Its kAttendWarps warps split the positions (warp w takes
// every kAttendWarps-th from the w-th, two per step so that their loads are in
// flight together), each with an online softmax: lane l holds dims l, l + 32,
// ... of q and of the output; a shuffle-xor sum gives each position's score.
// The warps' maxima, sums and outputs meet in shared memory, where warp 0
// merges them. One warp per head walked every position in turn: at decode, a
// few warps in all for the whole chip (41 us at SmolLM2's position 130 on the
// H200, against 5.8 us now).
//
// A one-token step (decode) instead splits the positions into chunks
// (flash-decoding): one block per (chunk, KV head) serves all the query heads
// of its group, reading each K and V row once with 128-bit loads, and writes
// each head's partial maximum, sum and unnormalized output to workspace in
// scratch; a second kernel merges a head's chunks. One block per (token,
// head) gave 32 blocks at decode, each reading its KV rows again for every
// query head of the group: 125 us for 32 heads, 8 KV heads, head_dim 128 at
// 4096 positions on the H200 (268 GB/s).
//
//===----------------------------------------------------------------------===//

#include "GPUStepLowering.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/FormatVariadic.h"

using namespace mlir;
using namespace mlir::kiln;

namespace {

struct AttentionShape {
  int64_t heads, kvHeads, headDim, layers, context, layer, window;
  float scale, softcap;
  bool causal;
  int64_t kvWidth() const { return kvHeads * headDim; }
  int64_t planeElems() const { return layers * context * kvWidth(); }
};

/// Threads of a token's KV append: one value each for KV rows up to 1024 wide
/// (128 threads looping 8 times over an 8B model's rows took 8.5 us a layer
/// on the H200, each step waiting for its load).
constexpr int64_t kAppendThreads = 1024;
/// Warps of one (token, head)'s attention block.
constexpr int64_t kAttendWarps = 16;

int64_t appendKernel(GPUKernelLibrary &kernels, const AttentionShape &a) {
  std::string name =
      llvm::formatv("kiln_kv_append_kv{0}_d{1}_L{2}_c{3}_l{4}", a.kvHeads,
                    a.headDim, a.layers, a.context, a.layer);
  return kernels.get(
      name,
      {{"k", KernelArgKind::Buffer},
       {"v", KernelArgKind::Buffer},
       {"cache", KernelArgKind::Buffer},
       {"position", KernelArgKind::Index}},
      [&](GPUKernelBuilder &kb) {
        Type f32 = kb.b.getF32Type();
        Value k = kb.view("k", f32), v = kb.view("v", f32);
        Value cache = kb.view("cache", f32);
        Value t = kb.blockIdx(gpu::Dimension::x);
        Value pos = kb.add(kb.arg("position"), t);
        kb.ifThen(kb.ult(pos, kb.idx(a.context)), [&] {
          Value slot = kb.add(kb.idx(a.layer * a.context * a.kvWidth()),
                              kb.mul(pos, kb.idx(a.kvWidth())));
          Value src = kb.mul(t, kb.idx(a.kvWidth()));
          kb.forEach(kb.threadIdx(), kb.idx(a.kvWidth()),
                     kb.idx(kAppendThreads), [&](Value c) {
                       kb.store(kb.load(k, kb.add(src, c)), cache,
                                kb.add(slot, c));
                       kb.store(kb.load(v, kb.add(src, c)), cache,
                                kb.add(kb.add(slot, kb.idx(a.planeElems())), c));
                     });
        });
      });
}

int64_t attendKernel(GPUKernelLibrary &kernels, const AttentionShape &a) {
  std::string name = llvm::formatv(
      "kiln_attention_h{0}_kv{1}_d{2}_L{3}_c{4}_l{5}_w{6}_{7}_s{8}{9}_"
      "split{10}",
      a.heads, a.kvHeads, a.headDim, a.layers, a.context, a.layer, a.window,
      a.causal ? "causal" : "full", floatKey(a.scale),
      a.softcap > 0 ? "_cap" + floatKey(a.softcap) : "", kAttendWarps);
  return kernels.get(
      name,
      {{"q", KernelArgKind::Buffer},
       {"cache", KernelArgKind::Buffer},
       {"y", KernelArgKind::Buffer},
       {"position", KernelArgKind::Index},
       {"tokens", KernelArgKind::Index}},
      [&](GPUKernelBuilder &kb) {
        ImplicitLocOpBuilder &b = kb.b;
        Type f32 = b.getF32Type();
        Value q = kb.view("q", f32), y = kb.view("y", f32);
        Value cache = kb.view("cache", f32);
        Value position = kb.arg("position"), tokens = kb.arg("tokens");
        Value t = kb.blockIdx(gpu::Dimension::x);
        Value h = kb.blockIdx(gpu::Dimension::y);
        Value lane = kb.lane(), warp = kb.warp();
        int64_t perLane = a.headDim / kWarpSize;
        // Each warp's maximum, sum and unnormalized output, for the merge.
        Value maxima = kb.sharedArray(kAttendWarps, f32);
        Value sums = kb.sharedArray(kAttendWarps, f32);
        Value outputs = kb.sharedArray(kAttendWarps * a.headDim, f32);
        int64_t group = a.heads / a.kvHeads;
        Value qCol = kb.add(kb.mul(t, kb.idx(a.heads * a.headDim)),
                            kb.mul(h, kb.idx(a.headDim)));
        Value kvCol = kb.mul(kb.div(h, kb.idx(group)), kb.idx(a.headDim));
        SmallVector<Value> qv;
        for (int64_t d = 0; d < perLane; ++d)
          qv.push_back(kb.load(
              q, kb.add(qCol, kb.add(lane, kb.idx(d * kWarpSize)))));
        Value end = a.causal ? kb.add(kb.add(position, t), kb.idx(1))
                             : kb.add(position, tokens);
        end = kb.minu(end, kb.idx(a.context));
        Value start = kb.idx(0);
        if (a.window > 0) {
          Value w = kb.idx(a.window);
          start = kb.select(kb.ult(end, w), kb.idx(0), kb.sub(end, w));
        }
        Value layerBase = kb.idx(a.layer * a.context * a.kvWidth());
        SmallVector<Value> inits = {kb.f(-3.0e38f), kb.f(0.0f)};
        for (int64_t d = 0; d < perLane; ++d)
          inits.push_back(kb.f(0.0f));
        // Dims lane, lane + 32, ... of the K (plane 0) or V row of position j.
        auto rowOf = [&](Value j, int64_t plane) {
          return kb.add(layerBase,
                        kb.add(kb.add(kb.mul(j, kb.idx(a.kvWidth())), kvCol),
                               kb.idx(plane * a.planeElems())));
        };
        auto dims = [&](Value row) {
          SmallVector<Value> v;
          for (int64_t d = 0; d < perLane; ++d)
            v.push_back(kb.load(cache, kb.add(row, kb.add(lane, kb.idx(
                                                          d * kWarpSize)))));
          return v;
        };
        auto scoreOf = [&](ArrayRef<Value> keys) {
          Value partial = kb.f(0.0f);
          for (int64_t d = 0; d < perLane; ++d)
            partial = kb.fma(qv[d], keys[d], partial);
          Value score = kb.mul(kb.warpSum(partial), kb.f(a.scale));
          if (a.softcap > 0)
            score = kb.mul(math::TanhOp::create(
                               b, kb.div(score, kb.f(a.softcap))),
                           kb.f(a.softcap));
          return score;
        };
        // Two positions per step (j and j + kAttendWarps), their loads issued
        // together; past the end the second is position end - 1 again with
        // score -3e38, so its weight is 0.
        auto scan = kb.loop(
            kb.add(start, warp), end, kb.idx(2 * kAttendWarps), inits,
            [&](Value j, ValueRange state) {
              Value j2 = kb.add(j, kb.idx(kAttendWarps));
              Value valid2 = kb.ult(j2, end);
              j2 = kb.minu(j2, kb.sub(end, kb.idx(1)));
              SmallVector<Value> k1 = dims(rowOf(j, 0));
              SmallVector<Value> k2 = dims(rowOf(j2, 0));
              SmallVector<Value> v1 = dims(rowOf(j, 1));
              SmallVector<Value> v2 = dims(rowOf(j2, 1));
              Value s1 = scoreOf(k1);
              Value s2 = kb.select(valid2, scoreOf(k2), kb.f(-3.0e38f));
              Value m = kb.maxf(state[0], kb.maxf(s1, s2));
              Value corr = kb.exp(kb.sub(state[0], m));
              Value p1 = kb.exp(kb.sub(s1, m)), p2 = kb.exp(kb.sub(s2, m));
              SmallVector<Value> next = {
                  m, kb.add(kb.fma(state[1], corr, p1), p2)};
              for (int64_t d = 0; d < perLane; ++d)
                next.push_back(kb.fma(
                    p2, v2[d], kb.fma(p1, v1[d], kb.mul(state[2 + d], corr))));
              return next;
            });
        // A warp that saw no position keeps max -3e38 and sum 0: its weight
        // below is 0.
        kb.store(scan.getResult(0), maxima, warp);
        kb.store(scan.getResult(1), sums, warp);
        Value own = kb.mul(warp, kb.idx(a.headDim));
        for (int64_t d = 0; d < perLane; ++d)
          kb.store(scan.getResult(2 + d), outputs,
                   kb.add(own, kb.add(lane, kb.idx(d * kWarpSize))));
        kb.barrier();
        kb.ifThen(kb.ult(warp, kb.idx(1)), [&] {
          Value m = kb.load(maxima, kb.idx(0));
          for (int64_t w = 1; w < kAttendWarps; ++w)
            m = kb.maxf(m, kb.load(maxima, kb.idx(w)));
          Value total = kb.f(0.0f);
          SmallVector<Value> out(perLane, kb.f(0.0f));
          for (int64_t w = 0; w < kAttendWarps; ++w) {
            Value weight = kb.exp(kb.sub(kb.load(maxima, kb.idx(w)), m));
            total = kb.fma(kb.load(sums, kb.idx(w)), weight, total);
            for (int64_t d = 0; d < perLane; ++d)
              out[d] = kb.fma(
                  kb.load(outputs,
                          kb.add(kb.idx(w * a.headDim + d * kWarpSize), lane)),
                  weight, out[d]);
          }
          Value inv = kb.div(kb.f(1.0f), total);
          for (int64_t d = 0; d < perLane; ++d)
            kb.store(kb.mul(out[d], inv), y,
                     kb.add(qCol, kb.add(lane, kb.idx(d * kWarpSize))));
        });
      });
}

/// Warps of a decode chunk's block, and the positions each row group of
/// lanes has in flight per step.
constexpr int64_t kSplitWarps = 8;
constexpr int64_t kSplitUnroll = 4;
/// Blocks a decode attention aims for at a full context: two per SM of a
/// 132-SM H100/H200, so that every SM streams KV rows.
constexpr int64_t kSplitTargetBlocks = 264;
/// The shared memory a chunk's block may use for its warps' partials.
constexpr int64_t kSplitSharedBytes = 40 * 1024;
constexpr int64_t kCombineThreads = 128;

/// How a decode chunk's block reads a KV row: lanesPerRow lanes each load
/// vecsPerLane 16-byte pieces (dims 4 (v lanesPerRow + lane) .. + 3), so a
/// warp reads rowsPerWarp rows at once.
struct SplitPlan {
  int64_t lanesPerRow, vecsPerLane, rowsPerWarp, chunk, chunks;
  /// Partial softmaxes of one query head in a block: one per row group.
  int64_t partials() const { return kSplitWarps * rowsPerWarp; }
};

/// The split plan of `a`, or nothing where its rows do not divide into
/// 16-byte pieces over a power of two of lanes (or its partials would not
/// fit in shared memory): those keep one block per (token, head).
std::optional<SplitPlan> splitPlanOf(const AttentionShape &a) {
  if (a.headDim % 4 != 0)
    return std::nullopt;
  int64_t pieces = a.headDim / 4;
  SplitPlan p;
  if (pieces <= kWarpSize) {
    if (!llvm::isPowerOf2_64(pieces))
      return std::nullopt;
    p.lanesPerRow = pieces;
    p.vecsPerLane = 1;
  } else {
    if (pieces % kWarpSize != 0)
      return std::nullopt;
    p.lanesPerRow = kWarpSize;
    p.vecsPerLane = pieces / kWarpSize;
  }
  p.rowsPerWarp = kWarpSize / p.lanesPerRow;
  int64_t group = a.heads / a.kvHeads;
  if (group * p.partials() * (a.headDim + 2) * 4 > kSplitSharedBytes)
    return std::nullopt;
  p.chunk = 64;
  while (p.chunk < 1024 &&
         llvm::divideCeil(a.context, p.chunk) * a.kvHeads > kSplitTargetBlocks)
    p.chunk *= 2;
  p.chunks = llvm::divideCeil(a.context, p.chunk);
  return p;
}

/// Floats of a split decode's workspace: per (head, chunk) a maximum, a sum
/// and head_dim outputs.
int64_t splitWorkspaceFloats(const AttentionShape &a, const SplitPlan &p) {
  return a.heads * p.chunks * (a.headDim + 2);
}

/// The visible positions [start, end) of a one-token step at `position`.
std::pair<Value, Value> decodeRange(GPUKernelBuilder &kb,
                                    const AttentionShape &a, Value position) {
  Value end = kb.minu(kb.add(position, kb.idx(1)), kb.idx(a.context));
  Value start = kb.idx(0);
  if (a.window > 0) {
    Value w = kb.idx(a.window);
    start = kb.select(kb.ult(end, w), kb.idx(0), kb.sub(end, w));
  }
  return {start, end};
}

int64_t splitKernel(GPUKernelLibrary &kernels, const AttentionShape &a,
                    const SplitPlan &p) {
  std::string name = llvm::formatv(
      "kiln_attention_decode_h{0}_kv{1}_d{2}_L{3}_c{4}_l{5}_w{6}_s{7}{8}_"
      "chunk{9}_warps{10}",
      a.heads, a.kvHeads, a.headDim, a.layers, a.context, a.layer, a.window,
      floatKey(a.scale), a.softcap > 0 ? "_cap" + floatKey(a.softcap) : "",
      p.chunk, kSplitWarps);
  return kernels.get(
      name,
      {{"q", KernelArgKind::Buffer},
       {"cache", KernelArgKind::Buffer},
       {"work", KernelArgKind::Buffer},
       {"position", KernelArgKind::Index}},
      [&](GPUKernelBuilder &kb) {
        ImplicitLocOpBuilder &b = kb.b;
        Type f32 = b.getF32Type();
        Type v4f32 = VectorType::get({4}, f32);
        Value q4 = kb.view("q", v4f32), cache4 = kb.view("cache", v4f32);
        Value work = kb.view("work", f32);
        int64_t group = a.heads / a.kvHeads;
        int64_t vecs = p.vecsPerLane, values = 4 * vecs;
        int64_t partials = p.partials();
        Value chunkIndex = kb.blockIdx(gpu::Dimension::x);
        Value g = kb.blockIdx(gpu::Dimension::y);
        Value lane = kb.lane(), warp = kb.warp();
        Value rowInWarp = kb.div(lane, kb.idx(p.lanesPerRow));
        Value sub = kb.rem(lane, kb.idx(p.lanesPerRow));
        auto [start, end] = decodeRange(kb, a, kb.arg("position"));
        Value chunkStart = kb.mul(chunkIndex, kb.idx(p.chunk));
        Value from = kb.select(kb.ult(chunkStart, start), start, chunkStart);
        Value to = kb.minu(end, kb.add(chunkStart, kb.idx(p.chunk)));
        Value maxima = kb.sharedArray(group * partials, f32);
        Value sums = kb.sharedArray(group * partials, f32);
        Value outputs = kb.sharedArray(group * partials * a.headDim, f32);
        // The whole block takes this branch or not, so its barrier is safe.
        kb.ifThen(kb.ult(from, to), [&] {
          // The group's query rows, pre-scaled, the lane's dims only.
          float qScale = a.scale;
          SmallVector<SmallVector<Value>> qs(group);
          for (int64_t hh = 0; hh < group; ++hh) {
            Value head = kb.add(kb.mul(g, kb.idx(group)), kb.idx(hh));
            Value base = kb.add(kb.mul(head, kb.idx(a.headDim / 4)), sub);
            for (int64_t v = 0; v < vecs; ++v) {
              Value piece =
                  kb.load(q4, kb.add(base, kb.idx(v * p.lanesPerRow)));
              for (int64_t e = 0; e < 4; ++e)
                qs[hh].push_back(kb.mul(
                    vector::ExtractOp::create(b, piece, e), kb.f(qScale)));
            }
          }
          Value layerBase = kb.idx(a.layer * a.context * a.kvWidth() / 4);
          Value headBase = kb.add(kb.mul(g, kb.idx(a.headDim / 4)), sub);
          // The lane's 16-byte pieces of the K (plane 0) or V row of
          // position j.
          auto piecesOf = [&](Value j, int64_t plane) {
            Value row = kb.add(
                kb.add(layerBase, kb.mul(j, kb.idx(a.kvWidth() / 4))),
                kb.add(headBase, kb.idx(plane * a.planeElems() / 4)));
            SmallVector<Value> out;
            for (int64_t v = 0; v < vecs; ++v) {
              Value piece =
                  kb.load(cache4, kb.add(row, kb.idx(v * p.lanesPerRow)));
              for (int64_t e = 0; e < 4; ++e)
                out.push_back(vector::ExtractOp::create(b, piece, e));
            }
            return out;
          };
          // A row group's sum: xor offsets below lanesPerRow stay in it.
          auto rowSum = [&](Value x) {
            for (int64_t off = p.lanesPerRow / 2; off > 0; off /= 2)
              x = kb.add(x, gpu::ShuffleOp::create(b, x, kb.i32(off),
                                                   kb.i32(kWarpSize),
                                                   gpu::ShuffleMode::XOR)
                                .getShuffleResult());
            return x;
          };
          // Per query head: maximum, sum, then the lane's output values.
          int64_t stride = 2 + values;
          SmallVector<Value> inits;
          for (int64_t hh = 0; hh < group; ++hh) {
            inits.push_back(kb.f(-3.0e38f));
            inits.push_back(kb.f(0.0f));
            for (int64_t i = 0; i < values; ++i)
              inits.push_back(kb.f(0.0f));
          }
          int64_t perStep = partials * kSplitUnroll;
          auto scan = kb.loop(
              from, to, kb.idx(perStep), inits,
              [&](Value j, ValueRange state) {
                // kSplitUnroll positions per row group, all loads first;
                // one past `to` reads row to - 1 again and weighs 0.
                SmallVector<Value> valid;
                SmallVector<SmallVector<Value>> rowsK(kSplitUnroll),
                    rowsV(kSplitUnroll);
                for (int64_t u = 0; u < kSplitUnroll; ++u) {
                  Value pos = kb.add(
                      j, kb.add(kb.mul(kb.add(kb.idx(u * kSplitWarps), warp),
                                       kb.idx(p.rowsPerWarp)),
                                rowInWarp));
                  valid.push_back(kb.ult(pos, to));
                  pos = kb.minu(pos, kb.sub(to, kb.idx(1)));
                  rowsK[u] = piecesOf(pos, 0);
                  rowsV[u] = piecesOf(pos, 1);
                }
                SmallVector<Value> next;
                for (int64_t hh = 0; hh < group; ++hh) {
                  ValueRange st = state.slice(hh * stride, stride);
                  SmallVector<Value> scores;
                  Value m = st[0];
                  for (int64_t u = 0; u < kSplitUnroll; ++u) {
                    Value partial = kb.f(0.0f);
                    for (int64_t i = 0; i < values; ++i)
                      partial = kb.fma(qs[hh][i], rowsK[u][i], partial);
                    Value score = rowSum(partial);
                    if (a.softcap > 0)
                      score = kb.mul(math::TanhOp::create(
                                         b, kb.div(score, kb.f(a.softcap))),
                                     kb.f(a.softcap));
                    score = kb.select(valid[u], score, kb.f(-3.0e38f));
                    scores.push_back(score);
                    m = kb.maxf(m, score);
                  }
                  Value corr = kb.exp(kb.sub(st[0], m));
                  Value sum = kb.mul(st[1], corr);
                  SmallVector<Value> out;
                  for (int64_t i = 0; i < values; ++i)
                    out.push_back(kb.mul(st[2 + i], corr));
                  for (int64_t u = 0; u < kSplitUnroll; ++u) {
                    // Not exp(-3e38 - m): with m = -3e38 that is 1.
                    Value weight = kb.select(
                        valid[u], kb.exp(kb.sub(scores[u], m)), kb.f(0.0f));
                    sum = kb.add(sum, weight);
                    for (int64_t i = 0; i < values; ++i)
                      out[i] = kb.fma(weight, rowsV[u][i], out[i]);
                  }
                  next.push_back(m);
                  next.push_back(sum);
                  next.append(out);
                }
                return next;
              });
          // Each row group's partials, then the block's per head and dim.
          Value slot = kb.add(kb.mul(warp, kb.idx(p.rowsPerWarp)), rowInWarp);
          for (int64_t hh = 0; hh < group; ++hh) {
            Value at = kb.add(kb.idx(hh * partials), slot);
            kb.ifThen(kb.ult(sub, kb.idx(1)), [&] {
              kb.store(scan.getResult(hh * stride), maxima, at);
              kb.store(scan.getResult(hh * stride + 1), sums, at);
            });
            for (int64_t v = 0; v < vecs; ++v)
              for (int64_t e = 0; e < 4; ++e) {
                Value dim = kb.add(
                    kb.mul(kb.add(sub, kb.idx(v * p.lanesPerRow)), kb.idx(4)),
                    kb.idx(e));
                kb.store(scan.getResult(hh * stride + 2 + 4 * v + e), outputs,
                         kb.add(kb.mul(at, kb.idx(a.headDim)), dim));
              }
          }
          kb.barrier();
          int64_t floats = a.heads * p.chunks;
          kb.forEach(
              kb.threadIdx(), kb.idx(group * a.headDim),
              kb.idx(kSplitWarps * kWarpSize), [&](Value i) {
                Value hh = kb.div(i, kb.idx(a.headDim));
                Value d = kb.rem(i, kb.idx(a.headDim));
                Value first = kb.mul(hh, kb.idx(partials));
                Value m = kb.load(maxima, first);
                for (int64_t w = 1; w < partials; ++w)
                  m = kb.maxf(m, kb.load(maxima, kb.add(first, kb.idx(w))));
                Value total = kb.f(0.0f), out = kb.f(0.0f);
                for (int64_t w = 0; w < partials; ++w) {
                  Value at = kb.add(first, kb.idx(w));
                  Value weight = kb.exp(kb.sub(kb.load(maxima, at), m));
                  total = kb.fma(kb.load(sums, at), weight, total);
                  out = kb.fma(
                      kb.load(outputs,
                              kb.add(kb.mul(at, kb.idx(a.headDim)), d)),
                      weight, out);
                }
                Value head = kb.add(kb.mul(g, kb.idx(group)), hh);
                Value entry =
                    kb.add(kb.mul(head, kb.idx(p.chunks)), chunkIndex);
                kb.store(out, work,
                         kb.add(kb.idx(2 * floats),
                                kb.add(kb.mul(entry, kb.idx(a.headDim)), d)));
                kb.ifThen(kb.ult(d, kb.idx(1)), [&] {
                  kb.store(m, work, entry);
                  kb.store(total, work, kb.add(kb.idx(floats), entry));
                });
              });
        });
      });
}

/// Merges a head's chunks (those holding visible positions) into its output.
int64_t combineKernel(GPUKernelLibrary &kernels, const AttentionShape &a,
                      const SplitPlan &p) {
  std::string name =
      llvm::formatv("kiln_attention_combine_h{0}_d{1}_c{2}_w{3}_chunk{4}",
                    a.heads, a.headDim, a.context, a.window, p.chunk);
  return kernels.get(
      name,
      {{"work", KernelArgKind::Buffer},
       {"y", KernelArgKind::Buffer},
       {"position", KernelArgKind::Index}},
      [&](GPUKernelBuilder &kb) {
        Type f32 = kb.b.getF32Type();
        Value work = kb.view("work", f32), y = kb.view("y", f32);
        Value h = kb.blockIdx(gpu::Dimension::x);
        auto [start, end] = decodeRange(kb, a, kb.arg("position"));
        Value first = kb.div(start, kb.idx(p.chunk));
        Value last = GPUStepLowering::ceilDiv(end, p.chunk, kb.b);
        int64_t floats = a.heads * p.chunks;
        Value row = kb.mul(h, kb.idx(p.chunks));
        Value m = kb.loop(first, last, kb.idx(1), {kb.f(-3.0e38f)},
                          [&](Value c, ValueRange st) {
                            return SmallVector<Value>{kb.maxf(
                                st[0], kb.load(work, kb.add(row, c)))};
                          })
                      .getResult(0);
        kb.forEach(kb.threadIdx(), kb.idx(a.headDim), kb.idx(kCombineThreads),
                   [&](Value d) {
                     auto sums = kb.loop(
                         first, last, kb.idx(1), {kb.f(0.0f), kb.f(0.0f)},
                         [&](Value c, ValueRange st) {
                           Value entry = kb.add(row, c);
                           Value weight = kb.exp(
                               kb.sub(kb.load(work, entry), m));
                           Value out = kb.load(
                               work, kb.add(kb.idx(2 * floats),
                                            kb.add(kb.mul(entry,
                                                          kb.idx(a.headDim)),
                                                   d)));
                           return SmallVector<Value>{
                               kb.fma(kb.load(work, kb.add(kb.idx(floats),
                                                           entry)),
                                      weight, st[0]),
                               kb.fma(out, weight, st[1])};
                         });
                     kb.store(kb.div(sums.getResult(1), sums.getResult(0)), y,
                              kb.add(kb.mul(h, kb.idx(a.headDim)), d));
                   });
      });
}

AttentionShape shapeOf(AttentionOp a) {
  KVCacheType cache = a.getCache().getType();
  return {int64_t(a.getNumHeads()),
          cache.getKvHeads(),
          cache.getHeadDim(),
          cache.getLayers(),
          cache.getContextLength(),
          int64_t(a.getLayer()),
          int64_t(a.getSlidingWindow()),
          a.getScale().convertToFloat(),
          a.getSoftcap().convertToFloat(),
          a.getCausal()};
}

struct AttentionLowering : GPUKernelPattern<AttentionOp> {
  int64_t workspaceBytes(AttentionOp a) const override {
    AttentionShape shape = shapeOf(a);
    std::optional<SplitPlan> plan = splitPlanOf(shape);
    return plan ? 4 * splitWorkspaceFloats(shape, *plan) : 0;
  }

  LogicalResult lower(AttentionOp a, GPUStepLowering &step,
                      ImplicitLocOpBuilder &b) const override {
    Operation *op = a;
    for (Value v : {a.getQuery(), a.getKey(), a.getValue()})
      if (failed(step.requireRowsF32(op, v.getType(), 1)))
        return failure();
    KVCacheType cache = a.getCache().getType();
    if (!cache.getElementType().isF32())
      return a.emitOpError("the GPU lowering needs an f32 KV cache");
    if (cache.getHeadDim() % kWarpSize != 0)
      return a.emitOpError("the GPU lowering needs head_dim to be a multiple "
                           "of 32, got ")
             << cache.getHeadDim();
    AttentionShape shape = shapeOf(a);
    if (a.getPositions())
      return a.emitOpError("over several sequences is not supported on the "
                           "GPU yet");
    Value q = step.mapped(a.getQuery());
    Value y = step.resultBuffer(a.getResult(), q, b);
    Value cacheBuffer = step.mapped(a.getCache());
    Value position = step.mapped(a.getPosition());
    Value tokens = step.rowsOf(q, b);
    Value one = arith::ConstantIndexOp::create(b, 1);
    step.launch(appendKernel(step.kernels, shape), {tokens, one, one},
                {kAppendThreads, 1, 1},
                {step.mapped(a.getKey()), step.mapped(a.getValue()),
                 cacheBuffer, position},
                b);
    auto attendPerHead = [&] {
      step.launch(attendKernel(step.kernels, shape),
                  {tokens, arith::ConstantIndexOp::create(b, shape.heads), one},
                  {kAttendWarps * kWarpSize, 1, 1},
                  {q, cacheBuffer, y, position, tokens}, b);
    };
    std::optional<SplitPlan> plan = splitPlanOf(shape);
    if (!plan) {
      attendPerHead();
      step.bind(a.getResult(), y);
      return success();
    }
    // One token (decode): the split kernels; else one block per (token,
    // head).
    Value decode = arith::CmpIOp::create(b, arith::CmpIPredicate::eq, tokens,
                                         one);
    auto branch = scf::IfOp::create(b, decode, /*withElseRegion=*/true);
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(branch.thenBlock()->getTerminator());
      Value work = step.workspace(b);
      step.launch(splitKernel(step.kernels, shape, *plan),
                  {arith::ConstantIndexOp::create(b, plan->chunks),
                   arith::ConstantIndexOp::create(b, shape.kvHeads), one},
                  {kSplitWarps * kWarpSize, 1, 1},
                  {q, cacheBuffer, work, position}, b);
      step.launch(combineKernel(step.kernels, shape, *plan),
                  {arith::ConstantIndexOp::create(b, shape.heads), one, one},
                  {kCombineThreads, 1, 1}, {work, y, position}, b);
      b.setInsertionPoint(branch.elseBlock()->getTerminator());
      attendPerHead();
    }
    step.bind(a.getResult(), y);
    return success();
  }
};

} // namespace

void mlir::kiln::populateGPUAttentionPatterns(GPUKernelPatterns &patterns) {
  patterns.add<AttentionLowering>();
}
