//===- SplitLayout.h - ggml codes apart from scales for the GPU -*- C++ -*-===//
//-*-===//
//
// `#kiln.quant<..., layout = gguf, target_layout = #kiln_gpu.split>`: Q4_0,
// Q4_1 and Q8_0 weights rearranged at compile time for the CUDA GEMV, whose
// lane l takes block c = 32i + l of a row in iteration i. In GGUF a block's
// 2- or 4-byte header makes blocks 18, 20 or 34 bytes: a lane's block is
// neither 16-byte aligned nor next to its neighbour's codes. Here a weight of
// n rows of C = K / 32 blocks, each with Q bytes of codes (16, Q8_0: 32) and
// an H-byte header (2: d; Q4_1 4: d, m), is stored as
//
//   codes    n rows of C * Q bytes; a row is Q / 16 planes of C * 16 bytes,
//            plane p holding bytes [16p, 16p + 16) of each block's codes
//            (block c at 16c), so a warp's 128-bit loads of one plane read
//            512 contiguous bytes;
//   headers  from byte n * C * Q: block c of row r at (r * C + c) * H, its
//            ggml header bytes as they are.
//
// Codes and headers keep ggml's encoding (ggml-common.h), so the size is the
// GGUF size and value j of a block decodes as there.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOGPU_IR_SPLITLAYOUT_H
#define KILN_CONVERSION_KILNTOGPU_IR_SPLITLAYOUT_H

#include "Kiln/IR/GGMLFormats.h"

#include <cstdint>

namespace mlir::kiln {

/// How a ggml format is split: codeBytes (Q) and headerBytes (H) per block.
struct SplitFormat {
  ::kiln::GGMLType type;
  const char *name; // for kernel symbols: "q4_0"
  unsigned codeBytes, headerBytes;
  bool hasMin;
  unsigned codeBits() const { return codeBytes == 16 ? 4 : 8; }
};

/// The split form of ggml format `type`, or null if it has none.
const SplitFormat *findSplitFormat(::kiln::GGMLType type);

/// Writes the `rows` x `k` weight `source` (GGUF blocks of `format`) into
/// `dest` in the split layout (as many bytes).
void packSplit(const SplitFormat &format, uint64_t rows, uint64_t k,
               const uint8_t *source, uint8_t *dest);

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOGPU_IR_SPLITLAYOUT_H
