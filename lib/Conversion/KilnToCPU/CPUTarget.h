//===- CPUTarget.h - what differs between the CPU variants ------*- C++ -*-===//
//
// The CPU variants kernels are built for (KernelISA, LoweringOptions.h)
// differ in one thing the kernels see: how bytes are multiplied and summed
// in the integer dot products of int8 activations. Kernels ask a CPUTarget;
// none compares CPU names.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_CONVERSION_KILNTOCPU_CPUTARGET_H
#define KILN_CONVERSION_KILNTOCPU_CPUTARGET_H

#include "Conversion/LoweringOptions.h"

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir::kiln {

class CPUTarget {
public:
  explicit CPUTarget(KernelISA isa) : isa(isa) {}

  /// The variant's name in kernel symbols: generic, x86_64_v3, x86_64_v4.
  std::string getSymbolName() const;

  /// acc + sum of the four products u[4i..4i+3] * s[4i..4i+3] in lane i of
  /// vector<16xi32> `acc` (u, s: vector<64xi8>, u unsigned, s signed):
  /// vpdpbusd on AVX-512 VNNI, the same sums from vpmaddubsw + vpmaddwd on
  /// AVX2 (no saturation for |u| <= 128, |s| <= 127), portable vector code
  /// for generic.
  Value emitByteDot(ImplicitLocOpBuilder &b, Value acc, Value u, Value s) const;

  /// acc + the byte dots of every pair (us[i], ss[i]), as emitByteDot's. On
  /// AVX2, codes of few bits have their vpmaddubsw pair sums added in i16
  /// before one vpmaddwd (forCodeBits says how many fit).
  Value emitByteDots(ImplicitLocOpBuilder &b, Value acc, ArrayRef<Value> us,
                     ArrayRef<Value> ss) const;

  /// Byte i of the result is byte indices[i] (0..7) of the 8-byte word that
  /// every 8 bytes of `table` repeat (both vector<64xi8>): vpshufb on
  /// AVX-512BW and, per half, on AVX2 (each 16-byte lane holds the word
  /// twice); selects for generic.
  Value emitPickBytes(ImplicitLocOpBuilder &b, Value table,
                      Value indices) const;

  /// vpshufb on every 16-byte lane: byte i of the result is byte
  /// indices[i] & 15 of the lane of `table` that holds byte i, or 0 where
  /// indices[i] has bit 7 set (both vector<64xi8>); compares and selects for
  /// generic.
  Value emitShuffleLanes16(ImplicitLocOpBuilder &b, Value table,
                           Value indices) const;

  /// Byte i of the result is table[indices[i]] (indices 0..15, a
  /// vector<64xi8>): a 16-entry codebook lookup, vpshufb on x86, compares
  /// and selects for generic.
  Value emitLookup16(ImplicitLocOpBuilder &b, ArrayRef<uint8_t> table,
                     Value indices) const;

  /// The target whose emitByteDot multiplies unsigned codes of `codeBits`
  /// bits exactly: vpmaddubsw saturates past 16-bit pair sums, so on AVX2
  /// 8-bit codes are split into nibbles, each multiplied by vpmaddubsw.
  CPUTarget forCodeBits(int64_t codeBits) const;

private:
  CPUTarget(KernelISA isa, int64_t maxCode) : isa(isa), maxCode(maxCode) {}

  KernelISA isa;
  /// The largest unsigned code emitByteDot's u holds (255: any byte,
  /// forCodeBits(8)).
  int64_t maxCode = 128;
};

} // namespace mlir::kiln

#endif // KILN_CONVERSION_KILNTOCPU_CPUTARGET_H
