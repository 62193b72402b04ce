// RUN: kiln-opt %s --kiln-prune | FileCheck %s
// RUN: kiln-opt %s --kiln-prune | kiln-opt | FileCheck %s
// RUN: kiln-opt %s --kiln-prune="pattern=nm n=2 m=4" | FileCheck %s --check-prefix=NM
// RUN: kiln-opt %s --kiln-prune="pattern=block block=1x4 rate=0.5" | FileCheck %s --check-prefix=BLOCK
// RUN: kiln-opt %s --kiln-prune="pattern=nm" --kiln-quantize="bits=8 group=8" | FileCheck %s --check-prefix=QUANT

// Default: unstructured, magnitude, half of each row. w1's rows keep their
// 4 largest |w| (nnz counts kept values over the weight); the f16 weight w3
// keeps its type, values and zeros in f16; w2, also an embedding table, and
// the norm weight stay dense.
// CHECK-LABEL: func.func @layer
// CHECK: %[[W1:.*]] = kiln.weight dense_resource<w1> : tensor<64xi8> -> !kiln.weight<2x8xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 8, dense = true>>
// CHECK: kiln.linear %{{.*}}, %[[W1]]
// CHECK: kiln.weight dense<{{.*}}> : tensor<32xf16> -> !kiln.weight<4x8xf16>
// CHECK: kiln.embedding
// CHECK: %[[W3:.*]] = kiln.weight dense_resource<w3> : tensor<64xi8> -> !kiln.weight<4x8xf16, sparsity = #kiln.sparsity<kind = bitmap, nnz = 16, dense = true>>
// CHECK: kiln.rms_norm
// CHECK: kiln.linear %{{.*}}, %[[W3]]
// CHECK: w1: "0x4000000000000000000000C100000000000000000000A040000000000000E0400000C0400000000000000000000080BF00000040000040C0000080400000000000000000"
// CHECK: w3: "0x4000000000000000000000000039003A00BB003C000000000000000080BE003F803F00C00000000000000000404180C1C0410042000000000000000040438043C0C30044"

// 2:4: two of every four values along K.
// NM-LABEL: func.func @layer
// NM: kiln.weight dense_resource<w1> : tensor<64xi8> -> !kiln.weight<2x8xf32, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>>
// NM: kiln.weight dense_resource<w3> : tensor<64xi8> -> !kiln.weight<4x8xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>>
// NM: w1: "0x4000000000000000000000C1000040400000000000000000000000000000E0400000C0400000000000000000000080BF00000040000040C0000080400000000000000000"
// NM: w3: "0x4000000000000000003600B80000000000BB003C00000000803D003E00000000803F00C000000000C0C0004100000000C041004200000000C04200C300000000C0C30044"

// Blocks of 1x4: the two of w1's four blocks with the smallest sum of |w|
// (both of row 1) are zeroed; nnz counts kept blocks.
// BLOCK-LABEL: func.func @layer
// BLOCK: kiln.weight dense_resource<w1> : tensor<64xi8> -> !kiln.weight<2x8xf32, sparsity = #kiln.sparsity<kind = block, block_rows = 1, block_cols = 4, nnz = 2, dense = true>>
// BLOCK: kiln.weight dense_resource<w3> : tensor<64xi8> -> !kiln.weight<4x8xf16, sparsity = #kiln.sparsity<kind = block, block_rows = 1, block_cols = 4, nnz = 4, dense = true>>
// BLOCK: w1: "0x400000000000803F000000C100004040000000400000A040000080C00000E0400000C0400000000000000000000000000000000000000000000000000000000000000000"

// Pruned, then quantized (8-bit, symmetric, groups of 8): the type keeps the
// mark and the zeros get the midpoint code 0x80, which decodes to zero.
// Row 0, [0 -8 3 0 0 0 7 6]: scale -8/-128 = 0.0625 (f16 0x2C00); row 1,
// [0 0 -1 2 -3 4 0 0]: scale 4/-128 = -0.03125 (0xA800).
// QUANT-LABEL: func.func @layer
// QUANT: kiln.weight dense_resource<w1_1> : tensor<20xi8> -> !kiln.weight<2x8x#kiln.quant<bits = 8, group = 8, scale = f16>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>>
// QUANT: w1_1: "0x40000000002C8000B0808080F0E000A88080A040E0008080"

func.func @layer(%x: tensor<3x8xf32>, %ids: tensor<3xi32>) -> (tensor<3x2xf32>, tensor<3x4xf32>, tensor<3x4xf32>) {
  %w1 = kiln.weight dense<[1.0, -8.0, 3.0, 2.0, 5.0, -4.0, 7.0, 6.0, 0.5, 0.25, -1.0, 2.0, -3.0, 4.0, 0.125, -0.25]> : tensor<16xf32> -> !kiln.weight<2x8xf32> loc("w1")
  %y = kiln.linear %x, %w1 : tensor<3x8xf32>, !kiln.weight<2x8xf32> -> tensor<3x2xf32>
  %w2 = kiln.weight dense<[-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -3.0, -2.0, -1.0, 0.0]> : tensor<32xf16> -> !kiln.weight<4x8xf16> loc("w2")
  %e = kiln.embedding %w2[%ids] : !kiln.weight<4x8xf16>, tensor<3xi32> -> tensor<3x8xf32>
  %z = kiln.linear %e, %w2 : tensor<3x8xf32>, !kiln.weight<4x8xf16> -> tensor<3x4xf32>
  %w3 = kiln.weight dense<[-0.125, 0.25, 0.375, -0.5, 0.625, 0.75, -0.875, 1.0, 1.125, -1.25, 1.375, 1.5, -1.625, 1.75, 1.875, -2.0, 2.125, 2.25, -2.375, 2.5, 2.625, -2.75, 2.875, 3.0, -3.125, 3.25, 3.375, -3.5, 3.625, 3.75, -3.875, 4.0]> : tensor<32xf16> -> !kiln.weight<4x8xf16> loc("w3")
  %n = kiln.weight dense<[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]> : tensor<8xf32> -> !kiln.weight<8xf32>
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32} : tensor<3x8xf32>, !kiln.weight<8xf32> -> tensor<3x8xf32>
  %u = kiln.linear %h, %w3 : tensor<3x8xf32>, !kiln.weight<4x8xf16> -> tensor<3x4xf32>
  return %y, %z, %u : tensor<3x2xf32>, tensor<3x4xf32>, tensor<3x4xf32>
}
