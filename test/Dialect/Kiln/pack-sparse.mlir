// kiln-pack-weights stores Q4_0 and Q8_0 weights pruned 2:4 (kiln-prune's
// `dense = true`) compressed for the sparse kernels: bytes checked against
// a numpy reference written from WeightLayout.h.
// RUN: %python %S/Inputs/nm_reference.py make > %t.mlir
// RUN: kiln-opt %t.mlir --kiln-pack-weights | FileCheck %s --check-prefix=PACKED
// RUN: kiln-opt %t.mlir --kiln-pack-weights | %python %S/Inputs/nm_reference.py check %t.mlir | FileCheck %s --check-prefix=BYTES
// The compressed blobs print and parse back.
// RUN: kiln-opt %t.mlir --kiln-pack-weights | kiln-opt | %python %S/Inputs/nm_reference.py check %t.mlir | FileCheck %s --check-prefix=BYTES
// RUN: kiln-opt %s --kiln-pack-weights | FileCheck %s
// RUN: not kiln-opt %S/Inputs/pack-sparse-violation.mlir --kiln-pack-weights 2>&1 | FileCheck %s --check-prefix=VIOLATION

// PACKED-LABEL: func.func @q4_0_pruned
// PACKED: kiln.weight dense_resource<q4_0_2of4{{[_0-9]*}}> : tensor<896xi8> -> !kiln.weight<16x128x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>
// PACKED-LABEL: func.func @q8_0_pruned
// PACKED: kiln.weight dense_resource<q8_0_2of4{{[_0-9]*}}> : tensor<1408xi8> -> !kiln.weight<32x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>
// PACKED-NOT: _pruned: "0x

// BYTES: q4_0_pruned: 896 compressed bytes match (1152 dense)
// BYTES: q8_0_pruned: 1408 compressed bytes match (2176 dense)

// VIOLATION: error: 'kiln.weight' op is marked 2:4 sparse but row 0 has more than 2 non-zero values in columns 0..3

// A pruned weight no sparse kernel reads stays dense (the dense fallback),
// its file unread.
// CHECK-LABEL: func.func @dense_fallback
// CHECK: kiln.weight #kiln.external<"m.bin", offset = 0, size = 1024> -> !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>>
func.func @dense_fallback(%x: tensor<2x64xf32>) -> tensor<2x8xf32> {
  %w = kiln.weight #kiln.external<"m.bin", offset = 0, size = 1024> -> !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>>
  %y = kiln.linear %x, %w : tensor<2x64xf32>, !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>> -> tensor<2x8xf32>
  return %y : tensor<2x8xf32>
}
