//===- SplitLayout.cpp - packing ggml blocks into #kiln_gpu.split ---------===//

#include "Conversion/KilnToGPU/IR/SplitLayout.h"

#include <cstring>

using namespace mlir::kiln;

namespace {
// ggml-common.h: block_q4_0 {d; qs[16]}, block_q4_1 {d, m; qs[16]},
// block_q8_0 {d; qs[32]}.
constexpr SplitFormat kSplitFormats[] = {
    {::kiln::GGMLType::Q4_0, "q4_0", 16, 2, false},
    {::kiln::GGMLType::Q4_1, "q4_1", 16, 4, true},
    {::kiln::GGMLType::Q8_0, "q8_0", 32, 2, false},
};
} // namespace

const SplitFormat *mlir::kiln::findSplitFormat(::kiln::GGMLType type) {
  for (const SplitFormat &format : kSplitFormats)
    if (format.type == type)
      return &format;
  return nullptr;
}

void mlir::kiln::packSplit(const SplitFormat &format, uint64_t rows, uint64_t k,
                           const uint8_t *source, uint8_t *dest) {
  uint64_t blocks = k / 32, codeBytes = format.codeBytes,
           headerBytes = format.headerBytes, planes = codeBytes / 16;
  uint64_t blockBytes = codeBytes + headerBytes;
  uint8_t *headers = dest + rows * blocks * codeBytes;
  for (uint64_t r = 0; r < rows; ++r) {
    uint8_t *row = dest + r * blocks * codeBytes;
    for (uint64_t c = 0; c < blocks; ++c) {
      const uint8_t *block = source + (r * blocks + c) * blockBytes;
      std::memcpy(headers + (r * blocks + c) * headerBytes, block, headerBytes);
      for (uint64_t p = 0; p < planes; ++p)
        std::memcpy(row + p * blocks * 16 + c * 16,
                    block + headerBytes + 16 * p, 16);
    }
  }
}
