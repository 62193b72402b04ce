// RUN: kiln-opt %s | kiln-opt | FileCheck %s
// RUN: kiln-opt %s --mlir-print-op-generic | kiln-opt | FileCheck %s

// Round trip of every kiln op and every form of !kiln.weight, #kiln.quant,
// #kiln.sparsity and !kiln.kv_cache. Sizes of #kiln.external ranges are the
// exact storage sizes: kiln.weight's verifier checks them. A #kiln.quant's
// target_layout is a target's attribute: test/Dialect/KilnCPU/ops.mlir.

//===----------------------------------------------------------------------===//
// Weight sources
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @weight_external
// CHECK: kiln.weight #kiln.external<"model.gguf", offset = 1024, size = 128> -> !kiln.weight<4x8xf32>
func.func @weight_external() -> !kiln.weight<4x8xf32> {
  %w = kiln.weight #kiln.external<"model.gguf", offset = 1024, size = 128> -> !kiln.weight<4x8xf32>
  return %w : !kiln.weight<4x8xf32>
}

// Inline floats of the weight's own element type are its storage.
// CHECK-LABEL: func.func @weight_inline_dense
// CHECK: kiln.weight dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]> : tensor<4xf32> -> !kiln.weight<4xf32>
func.func @weight_inline_dense() -> !kiln.weight<4xf32> {
  %w = kiln.weight dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32> -> !kiln.weight<4xf32>
  return %w : !kiln.weight<4xf32>
}

// Inline i8 bytes: one Q8_0 block (f16 scale 1.0, then 32 codes).
// CHECK-LABEL: func.func @weight_inline_bytes
// CHECK: kiln.weight dense<{{.*}}> : tensor<34xi8> -> !kiln.weight<1x32x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
func.func @weight_inline_bytes() -> !kiln.weight<1x32x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>> {
  %w = kiln.weight dense<[0, 60, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                          17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32]> : tensor<34xi8>
       -> !kiln.weight<1x32x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
  return %w : !kiln.weight<1x32x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
}

// A blob of 16 bytes (after the 4-byte alignment header): four f32 values.
// CHECK-LABEL: func.func @weight_dense_resource
// CHECK: kiln.weight dense_resource<norm_weight> : tensor<16xi8> -> !kiln.weight<4xf32>
func.func @weight_dense_resource() -> !kiln.weight<4xf32> {
  %w = kiln.weight dense_resource<norm_weight> : tensor<16xi8> -> !kiln.weight<4xf32>
  return %w : !kiln.weight<4xf32>
}

//===----------------------------------------------------------------------===//
// Dense weight element types
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @dense_element_types
// CHECK: -> !kiln.weight<4x8xf32>
// CHECK: -> !kiln.weight<4x8xf16>
// CHECK: -> !kiln.weight<4x8xbf16>
// CHECK: -> !kiln.weight<4x8xf8E4M3FN>
// CHECK: -> !kiln.weight<4x8xf8E5M2>
// CHECK: -> !kiln.weight<2x3x8xf16>
func.func @dense_element_types() {
  %0 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 128> -> !kiln.weight<4x8xf32>
  %1 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 64> -> !kiln.weight<4x8xf16>
  %2 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 64> -> !kiln.weight<4x8xbf16>
  %3 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 32> -> !kiln.weight<4x8xf8E4M3FN>
  %4 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 32> -> !kiln.weight<4x8xf8E5M2>
  // Rank 3: rows are the product of the outer dimensions.
  %5 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 96> -> !kiln.weight<2x3x8xf16>
  return
}

//===----------------------------------------------------------------------===//
// GGUF block formats (layout = gguf), 4 rows of K = 256
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @gguf_formats
// Q4_0: 18-byte blocks of 32.
// CHECK: size = 576> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
// Q4_1: 20-byte blocks.
// CHECK: size = 640> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>
// Q5_0: 22-byte blocks.
// CHECK: size = 704> -> !kiln.weight<4x256x#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf>>
// Q5_1: 24-byte blocks.
// CHECK: size = 768> -> !kiln.weight<4x256x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, layout = gguf>>
// Q8_0: 34-byte blocks.
// CHECK: size = 1088> -> !kiln.weight<4x256x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
// Q2_K: 84-byte super-blocks of 256.
// CHECK: size = 336> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 4, layout = gguf>>
// Q3_K: 110-byte super-blocks.
// CHECK: size = 440> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 16, scale = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>
// Q4_K: 144-byte super-blocks.
// CHECK: size = 576> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>
// Q5_K: 176-byte super-blocks.
// CHECK: size = 704> -> !kiln.weight<4x256x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>
// Q6_K: 210-byte super-blocks.
// CHECK: size = 840> -> !kiln.weight<4x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>>
// IQ4_NL: Q4_0's 18-byte blocks, codes through ggml's kvalues_iq4nl.
// CHECK: size = 576> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, codebook = iq4_nl>>
// IQ4_XS: 136-byte super-blocks, 6-bit scales, the same codebook.
// CHECK: size = 544> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, codebook = iq4_nl>>
// TQ2_0 (66-byte blocks) and TQ1_0 (54): ternary, sizes of ggml's structs.
// CHECK: size = 264> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 256, scale = f16, layout = gguf, codebook = ternary>>
// CHECK: size = 216> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 256, scale = f16, layout = gguf, codebook = ternary_base3>>
// IQ2_XXS (66-byte blocks) and IQ3_XXS (98): grids and sign patterns.
// CHECK: size = 264> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 32, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq2_xxs>>
// CHECK: size = 392> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 32, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq3_xxs>>
// IQ2_XS (74-byte blocks, scales per 16) and IQ3_S (110).
// CHECK: size = 296> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq2_xs>>
// CHECK: size = 440> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 32, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq3_s>>
// IQ2_S (82-byte blocks), IQ1_S (50, scales per 32) and IQ1_M (56, per 16).
// CHECK: size = 328> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq2_s>>
// CHECK: size = 200> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 32, scale = f16, super_group = 256, sub_scale_bits = 3, layout = gguf, codebook = iq1_s>>
// CHECK: size = 224> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, sub_scale_bits = 3, layout = gguf, codebook = iq1_m>>
func.func @gguf_formats() {
  %q4_0 = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 576> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  %q4_1 = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 640> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>
  %q5_0 = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 704> -> !kiln.weight<4x256x#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf>>
  %q5_1 = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 768> -> !kiln.weight<4x256x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, layout = gguf>>
  %q8_0 = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 1088> -> !kiln.weight<4x256x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
  %q2_k = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 336> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 4, layout = gguf>>
  %q3_k = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 440> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 16, scale = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>
  %q4_k = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 576> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>
  %q5_k = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 704> -> !kiln.weight<4x256x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>
  %q6_k = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 840> -> !kiln.weight<4x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>>
  %iq4_nl = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 576> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, codebook = iq4_nl>>
  %iq4_xs = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 544> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 256, sub_scale_bits = 6, layout = gguf, codebook = iq4_nl>>
  %tq2_0 = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 264> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 256, scale = f16, layout = gguf, codebook = ternary>>
  %tq1_0 = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 216> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 256, scale = f16, layout = gguf, codebook = ternary_base3>>
  %iq2_xxs = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 264> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 32, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq2_xxs>>
  %iq3_xxs = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 392> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 32, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq3_xxs>>
  %iq2_xs = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 296> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq2_xs>>
  %iq3_s = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 440> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 32, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq3_s>>
  %iq2_s = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 328> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, sub_scale_bits = 4, layout = gguf, codebook = iq2_s>>
  %iq1_s = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 200> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 32, scale = f16, super_group = 256, sub_scale_bits = 3, layout = gguf, codebook = iq1_s>>
  %iq1_m = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 224> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, super_group = 256, sub_scale_bits = 3, layout = gguf, codebook = iq1_m>>
  return
}

//===----------------------------------------------------------------------===//
// Kiln's packed layout at any width (layout = packed is the default and is
// not printed)
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @packed_formats
// 2 bits, bf16 scale: 2 + 8 bytes per 32 values.
// CHECK: size = 320> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 32, scale = bf16>>
// 3 bits, f32 scale: 4 + 24 bytes per 64 values.
// CHECK: size = 448> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 64, scale = f32>>
// 5 bits, f8E4M3FN scale and an i8 zero point: 1 + 1 + 20 bytes per 32.
// CHECK: size = 704> -> !kiln.weight<4x256x#kiln.quant<bits = 5, group = 32, scale = f8E4M3FN, zero = i8>>
// 6 bits, a zero point of the code width: 2 + 1 + 12 bytes per 16.
// CHECK: size = 960> -> !kiln.weight<4x256x#kiln.quant<bits = 6, group = 16, scale = f16, zero = i6>>
// 7 bits, f8E5M2 scale: 1 + 7 bytes per 8 values.
// CHECK: size = 1024> -> !kiln.weight<4x256x#kiln.quant<bits = 7, group = 8, scale = f8E5M2>>
// Two levels in Kiln's layout: f32 super scale, 4-bit sub-scales.
// CHECK: size = 416> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 32, scale = f32, super_group = 256, sub_scale_bits = 4>>
// An explicit layout = packed is the default.
// CHECK: size = 576> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16>>
func.func @packed_formats() {
  %b2 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 320> -> !kiln.weight<4x256x#kiln.quant<bits = 2, group = 32, scale = bf16>>
  %b3 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 448> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 64, scale = f32>>
  %b5 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 704> -> !kiln.weight<4x256x#kiln.quant<bits = 5, group = 32, scale = f8E4M3FN, zero = i8>>
  %b6 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 960> -> !kiln.weight<4x256x#kiln.quant<bits = 6, group = 16, scale = f16, zero = i6>>
  %b7 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 1024> -> !kiln.weight<4x256x#kiln.quant<bits = 7, group = 8, scale = f8E5M2>>
  %b3k = kiln.weight #kiln.external<"m.bin", offset = 0, size = 416> -> !kiln.weight<4x256x#kiln.quant<bits = 3, group = 32, scale = f32, super_group = 256, sub_scale_bits = 4>>
  %b4 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 576> -> !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = packed>>
  return
}

//===----------------------------------------------------------------------===//
// Sparsity
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @sparsity
// 2:4: 256 kept halves and 256 2-bit indices.
// CHECK: size = 576> -> !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>
// Bitmap: 8 bytes per row, then 10 values.
// CHECK: size = 104> -> !kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 10>>
// CSR: 9 row pointers, 10 column indices, 10 values.
// CHECK: size = 116> -> !kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = csr, nnz = 10>>
// Blocks: a 1-byte block mask, then 3 kept 4x16 tiles.
// CHECK: size = 769> -> !kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = block, block_rows = 4, block_cols = 16, nnz = 3>>
// Pruned but stored dense (kiln-prune's output): the bytes of the dense or
// quantized weight, so a quantized one may carry the mark.
// CHECK: size = 1024> -> !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>>
// CHECK: size = 288> -> !kiln.weight<8x64x#kiln.quant<bits = 4, group = 32, scale = f16>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 256, dense = true>>
func.func @sparsity() {
  %nm = kiln.weight #kiln.external<"m.bin", offset = 0, size = 576> -> !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>
  %bitmap = kiln.weight #kiln.external<"m.bin", offset = 0, size = 104> -> !kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 10>>
  %csr = kiln.weight #kiln.external<"m.bin", offset = 0, size = 116> -> !kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = csr, nnz = 10>>
  %block = kiln.weight #kiln.external<"m.bin", offset = 0, size = 769> -> !kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = block, block_rows = 4, block_cols = 16, nnz = 3>>
  %pruned = kiln.weight #kiln.external<"m.bin", offset = 0, size = 1024> -> !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, dense = true>>
  %pruned_q4 = kiln.weight #kiln.external<"m.bin", offset = 0, size = 288> -> !kiln.weight<8x64x#kiln.quant<bits = 4, group = 32, scale = f16>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 256, dense = true>>
  return
}

//===----------------------------------------------------------------------===//
// Matrix ops
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @linear
// CHECK-SAME: (%[[X:.*]]: tensor<?x256xf32>, %[[W:.*]]: !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>)
// CHECK: %[[Y:.*]] = kiln.linear %[[X]], %[[W]] : tensor<?x256xf32>, !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>> -> tensor<?x64xf32>
// CHECK: return %[[Y]]
func.func @linear(%x: tensor<?x256xf32>, %w: !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>) -> tensor<?x64xf32> {
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @linear_bias
// CHECK-SAME: (%[[X:.*]]: tensor<2x3x8xf16>, %[[W:.*]]: !kiln.weight<16x8xf16>, %[[B:.*]]: !kiln.weight<16xf32>)
// CHECK: kiln.linear %[[X]], %[[W]], bias %[[B]] : tensor<2x3x8xf16>, !kiln.weight<16x8xf16>, !kiln.weight<16xf32> -> tensor<2x3x16xf16>
func.func @linear_bias(%x: tensor<2x3x8xf16>, %w: !kiln.weight<16x8xf16>, %b: !kiln.weight<16xf32>) -> tensor<2x3x16xf16> {
  %y = kiln.linear %x, %w, bias %b : tensor<2x3x8xf16>, !kiln.weight<16x8xf16>, !kiln.weight<16xf32> -> tensor<2x3x16xf16>
  return %y : tensor<2x3x16xf16>
}

// CHECK-LABEL: func.func @linear_residual
// CHECK-SAME: (%[[X:.*]]: tensor<?x8xf32>, %[[W:.*]]: !kiln.weight<16x8xf32>, %[[B:.*]]: !kiln.weight<16xf32>, %[[R:.*]]: tensor<?x16xf32>)
// CHECK: kiln.linear %[[X]], %[[W]], bias %[[B]] residual %[[R]] : tensor<?x8xf32>, !kiln.weight<16x8xf32>, !kiln.weight<16xf32> -> tensor<?x16xf32>
// CHECK: kiln.linear %[[X]], %[[W]] residual %[[R]] : tensor<?x8xf32>, !kiln.weight<16x8xf32> -> tensor<?x16xf32>
func.func @linear_residual(%x: tensor<?x8xf32>, %w: !kiln.weight<16x8xf32>, %b: !kiln.weight<16xf32>, %r: tensor<?x16xf32>) -> tensor<?x16xf32> {
  %y = kiln.linear %x, %w, bias %b residual %r : tensor<?x8xf32>, !kiln.weight<16x8xf32>, !kiln.weight<16xf32> -> tensor<?x16xf32>
  %z = kiln.linear %x, %w residual %r : tensor<?x8xf32>, !kiln.weight<16x8xf32> -> tensor<?x16xf32>
  return %z : tensor<?x16xf32>
}

// CHECK-LABEL: func.func @linear_sparse
// CHECK: kiln.linear %{{.*}}, %{{.*}} : tensor<4x64xbf16>, !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>> -> tensor<4x8xbf16>
func.func @linear_sparse(%x: tensor<4x64xbf16>, %w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>) -> tensor<4x8xbf16> {
  %y = kiln.linear %x, %w : tensor<4x64xbf16>, !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>> -> tensor<4x8xbf16>
  return %y : tensor<4x8xbf16>
}

// A Q4_0 weight stored 2:4 compressed (kiln-pack-weights).
// CHECK-LABEL: func.func @linear_sparse_q4_0
// CHECK: kiln.linear %{{.*}}, %{{.*}} : tensor<4x64xf32>, !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>> -> tensor<4x16xf32>
func.func @linear_sparse_q4_0(%x: tensor<4x64xf32>, %w: !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>) -> tensor<4x16xf32> {
  %y = kiln.linear %x, %w : tensor<4x64xf32>, !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>> -> tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// CHECK-LABEL: func.func @embedding
// CHECK-SAME: (%[[T:.*]]: !kiln.weight<1000x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>>, %[[IDS:.*]]: tensor<?xi32>)
// CHECK: kiln.embedding %[[T]][%[[IDS]]] : !kiln.weight<1000x256x#kiln.quant<{{.*}}>>, tensor<?xi32> -> tensor<?x256xf32>
func.func @embedding(%t: !kiln.weight<1000x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>>, %ids: tensor<?xi32>) -> tensor<?x256xf32> {
  %e = kiln.embedding %t[%ids] : !kiln.weight<1000x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>>, tensor<?xi32> -> tensor<?x256xf32>
  return %e : tensor<?x256xf32>
}

// CHECK-LABEL: func.func @embedding_scaled
// CHECK: kiln.embedding %{{.*}}[%{{.*}}] {scale = 2.500000e+01 : f32} : !kiln.weight<100x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
func.func @embedding_scaled(%t: !kiln.weight<100x64xf32>, %ids: tensor<?xi32>) -> tensor<?x64xf32> {
  %e = kiln.embedding %t[%ids] {scale = 25.0 : f32} : !kiln.weight<100x64xf32>, tensor<?xi32> -> tensor<?x64xf32>
  return %e : tensor<?x64xf32>
}

// A per-head norm: rms_norm over the last dim of a [tokens, heads, head_dim]
// view.
// CHECK-LABEL: func.func @rms_norm_per_head
// CHECK: kiln.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.99999997E-7 : f32} : tensor<?x4x32xf32>, !kiln.weight<32xf32> -> tensor<?x4x32xf32>
func.func @rms_norm_per_head(%x: tensor<?x4x32xf32>, %w: !kiln.weight<32xf32>) -> tensor<?x4x32xf32> {
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-6 : f32} : tensor<?x4x32xf32>, !kiln.weight<32xf32> -> tensor<?x4x32xf32>
  return %y : tensor<?x4x32xf32>
}

//===----------------------------------------------------------------------===//
// Norms
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @rms_norm
// CHECK: kiln.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.765625E-4 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
func.func @rms_norm(%x: tensor<?x64xf32>, %w: !kiln.weight<64xf32>) -> tensor<?x64xf32> {
  %y = kiln.rms_norm %x, %w {epsilon = 9.765625e-4 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @layer_norm
// CHECK: kiln.layer_norm %{{.*}}, %{{.*}} {epsilon = 9.765625E-4 : f32} : tensor<3x64xf16>, !kiln.weight<64xf16> -> tensor<3x64xf16>
func.func @layer_norm(%x: tensor<3x64xf16>, %w: !kiln.weight<64xf16>) -> tensor<3x64xf16> {
  %y = kiln.layer_norm %x, %w {epsilon = 9.765625e-4 : f32} : tensor<3x64xf16>, !kiln.weight<64xf16> -> tensor<3x64xf16>
  return %y : tensor<3x64xf16>
}

// CHECK-LABEL: func.func @layer_norm_bias
// CHECK-SAME: (%[[X:.*]]: tensor<3x64xbf16>, %[[W:.*]]: !kiln.weight<64xbf16>, %[[B:.*]]: !kiln.weight<64xbf16>)
// CHECK: kiln.layer_norm %[[X]], %[[W]], bias %[[B]] {epsilon = 9.765625E-4 : f32} : tensor<3x64xbf16>, !kiln.weight<64xbf16>, !kiln.weight<64xbf16> -> tensor<3x64xbf16>
func.func @layer_norm_bias(%x: tensor<3x64xbf16>, %w: !kiln.weight<64xbf16>, %b: !kiln.weight<64xbf16>) -> tensor<3x64xbf16> {
  %y = kiln.layer_norm %x, %w, bias %b {epsilon = 9.765625e-4 : f32} : tensor<3x64xbf16>, !kiln.weight<64xbf16>, !kiln.weight<64xbf16> -> tensor<3x64xbf16>
  return %y : tensor<3x64xbf16>
}

//===----------------------------------------------------------------------===//
// RoPE and attention
//===----------------------------------------------------------------------===//

// freq_scale = 1.0 is the default and is not printed.
// CHECK-LABEL: func.func @rope_llama
// CHECK-SAME: (%[[X:.*]]: tensor<?x256xf32>, %[[P:.*]]: index)
// CHECK: kiln.rope %[[X]], %[[P]] {freq_base = 1.000000e+04 : f32, head_dim = 64 : i64, num_heads = 4 : i64, rotary_dim = 64 : i64, style = #kiln.rope_style<llama>} : tensor<?x256xf32> -> tensor<?x256xf32>
func.func @rope_llama(%x: tensor<?x256xf32>, %pos: index) -> tensor<?x256xf32> {
  %y = kiln.rope %x, %pos {num_heads = 4, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32, freq_scale = 1.0 : f32} : tensor<?x256xf32> -> tensor<?x256xf32>
  return %y : tensor<?x256xf32>
}

// Partial rotation and a frequency scale.
// CHECK-LABEL: func.func @rope_neox
// CHECK: kiln.rope %{{.*}}, %{{.*}} {freq_base = 1.000000e+06 : f32, freq_scale = 2.500000e-01 : f32, head_dim = 64 : i64, num_heads = 2 : i64, rotary_dim = 32 : i64, style = #kiln.rope_style<neox>} : tensor<5x128xf16> -> tensor<5x128xf16>
func.func @rope_neox(%x: tensor<5x128xf16>, %pos: index) -> tensor<5x128xf16> {
  %y = kiln.rope %x, %pos {num_heads = 2, head_dim = 64, rotary_dim = 32, style = #kiln.rope_style<neox>, freq_base = 1000000.0 : f32, freq_scale = 0.25 : f32} : tensor<5x128xf16> -> tensor<5x128xf16>
  return %y : tensor<5x128xf16>
}

// Long-context scalings: per-frequency factors and a magnitude (Llama 3's
// rope_freqs, YaRN). The magnitude's default 1.0 is not printed.
// CHECK-LABEL: func.func @rope_scaled
// CHECK: kiln.rope %{{.*}}, %{{.*}} {freq_base = 1.000000e+04 : f32, freq_factors = array<f32: 1.000000e+00, 5.000000e-01, 2.500000e-01, 1.250000e-01>, head_dim = 8 : i64, magnitude = 1.13862896 : f32, num_heads = 2 : i64, rotary_dim = 8 : i64, style = #kiln.rope_style<neox>} : tensor<?x16xf32> -> tensor<?x16xf32>
// CHECK: kiln.linear %{{.*}}, %{{.*}} rope(%{{.*}}, #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 1.000000e+04, freq_scale = 1.000000e+00, freq_factors = [1.000000e+00, 1.000000e+00, 5.000000e-01, 5.000000e-01], magnitude = 1.250000e+00>)
// CHECK: kiln.linear %{{.*}}, %{{.*}} rope(%{{.*}}, #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 1.000000e+04, freq_scale = 1.000000e+00>)
func.func @rope_scaled(%x: tensor<?x16xf32>, %pos: index, %w: !kiln.weight<16x16xf32>) -> tensor<?x16xf32> {
  %y = kiln.rope %x, %pos {num_heads = 2, head_dim = 8, rotary_dim = 8, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32, freq_factors = array<f32: 1.0, 0.5, 0.25, 0.125>, magnitude = 1.138629 : f32} : tensor<?x16xf32> -> tensor<?x16xf32>
  %z = kiln.linear %y, %w rope(%pos, #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 10000.0, freq_scale = 1.0, freq_factors = [1.0, 1.0, 0.5, 0.5], magnitude = 1.25>) : tensor<?x16xf32>, !kiln.weight<16x16xf32> -> tensor<?x16xf32>
  %u = kiln.linear %z, %w rope(%pos, #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 10000.0, freq_scale = 1.0, magnitude = 1.0>) : tensor<?x16xf32>, !kiln.weight<16x16xf32> -> tensor<?x16xf32>
  return %u : tensor<?x16xf32>
}

// A step over several sequences: one position per token.
// CHECK-LABEL: func.func @rope_per_token
// CHECK-SAME: (%[[X:.*]]: tensor<?x128xf32>, %[[PS:.*]]: tensor<?xi32>)
// CHECK: kiln.rope %[[X]], positions %[[PS]] : tensor<?xi32> {freq_base = 1.000000e+04 : f32, head_dim = 64 : i64, num_heads = 2 : i64, rotary_dim = 64 : i64, style = #kiln.rope_style<llama>} : tensor<?x128xf32> -> tensor<?x128xf32>
func.func @rope_per_token(%x: tensor<?x128xf32>, %ps: tensor<?xi32>) -> tensor<?x128xf32> {
  %y = kiln.rope %x, positions %ps : tensor<?xi32> {num_heads = 2, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x128xf32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// Each token's KV slot (its sequence) and position.
// CHECK-LABEL: func.func @attention_per_sequence
// CHECK-SAME: (%[[Q:.*]]: tensor<3x256xf32>, %[[K:.*]]: tensor<3x64xf32>, %[[V:.*]]: tensor<3x64xf32>, %[[C:.*]]: !kiln.kv_cache<2x128x1x64xf32>, %[[S:.*]]: tensor<3xi32>, %[[P:.*]]: tensor<3xi32>)
// CHECK: kiln.attention %[[Q]], %[[K]], %[[V]], %[[C]][ slots %[[S]], positions %[[P]] : tensor<3xi32>, tensor<3xi32>] {layer = 1 : i64, num_heads = 4 : i64, scale = 1.250000e-01 : f32, sliding_window = 16 : i64} : tensor<3x256xf32>, tensor<3x64xf32>, tensor<3x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<3x256xf32>
func.func @attention_per_sequence(%q: tensor<3x256xf32>, %k: tensor<3x64xf32>, %v: tensor<3x64xf32>, %cache: !kiln.kv_cache<2x128x1x64xf32>, %s: tensor<3xi32>, %p: tensor<3xi32>) -> tensor<3x256xf32> {
  %a = kiln.attention %q, %k, %v, %cache[slots %s, positions %p : tensor<3xi32>, tensor<3xi32>] {layer = 1, num_heads = 4, scale = 0.125 : f32, sliding_window = 16} : tensor<3x256xf32>, tensor<3x64xf32>, tensor<3x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<3x256xf32>
  return %a : tensor<3x256xf32>
}

// Defaults (causal, no window, no softcap) are not printed.
// CHECK-LABEL: func.func @attention_defaults
// CHECK-SAME: (%[[Q:.*]]: tensor<?x256xf32>, %[[K:.*]]: tensor<?x64xf32>, %[[V:.*]]: tensor<?x64xf32>, %[[C:.*]]: !kiln.kv_cache<2x128x1x64xf32>, %[[P:.*]]: index)
// CHECK: kiln.attention %[[Q]], %[[K]], %[[V]], %[[C]][%[[P]]] {layer = 1 : i64, num_heads = 4 : i64, scale = 1.250000e-01 : f32} : tensor<?x256xf32>, tensor<?x64xf32>, tensor<?x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<?x256xf32>
func.func @attention_defaults(%q: tensor<?x256xf32>, %k: tensor<?x64xf32>, %v: tensor<?x64xf32>, %cache: !kiln.kv_cache<2x128x1x64xf32>, %pos: index) -> tensor<?x256xf32> {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 1, num_heads = 4, scale = 0.125 : f32, causal = true, sliding_window = 0, softcap = 0.0 : f32} : tensor<?x256xf32>, tensor<?x64xf32>, tensor<?x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<?x256xf32>
  return %a : tensor<?x256xf32>
}

// CHECK-LABEL: func.func @attention_options
// CHECK: kiln.attention {{.*}} {causal = false, layer = 0 : i64, num_heads = 8 : i64, scale = 1.250000e-01 : f32, sliding_window = 4096 : i64, softcap = 5.000000e+01 : f32} : tensor<3x512xf16>, tensor<3x128xf16>, tensor<3x128xf16>, !kiln.kv_cache<1x8192x2x64xf16> -> tensor<3x512xf16>
func.func @attention_options(%q: tensor<3x512xf16>, %k: tensor<3x128xf16>, %v: tensor<3x128xf16>, %cache: !kiln.kv_cache<1x8192x2x64xf16>, %pos: index) -> tensor<3x512xf16> {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 0, num_heads = 8, scale = 0.125 : f32, causal = false, sliding_window = 4096, softcap = 50.0 : f32} : tensor<3x512xf16>, tensor<3x128xf16>, tensor<3x128xf16>, !kiln.kv_cache<1x8192x2x64xf16> -> tensor<3x512xf16>
  return %a : tensor<3x512xf16>
}

// Multi-query attention over a bf16 cache.
// CHECK-LABEL: func.func @attention_mqa_bf16
// CHECK: kiln.attention {{.*}} : tensor<1x512xbf16>, tensor<1x128xbf16>, tensor<1x128xbf16>, !kiln.kv_cache<30x2048x1x128xbf16> -> tensor<1x512xbf16>
func.func @attention_mqa_bf16(%q: tensor<1x512xbf16>, %k: tensor<1x128xbf16>, %v: tensor<1x128xbf16>, %cache: !kiln.kv_cache<30x2048x1x128xbf16>, %pos: index) -> tensor<1x512xbf16> {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 29, num_heads = 4, scale = 0.088388 : f32} : tensor<1x512xbf16>, tensor<1x128xbf16>, tensor<1x128xbf16>, !kiln.kv_cache<30x2048x1x128xbf16> -> tensor<1x512xbf16>
  return %a : tensor<1x512xbf16>
}

//===----------------------------------------------------------------------===//
// Activations and elementwise ops
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @silu
// CHECK: kiln.silu %{{.*}} : tensor<?x64xf32>
func.func @silu(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = kiln.silu %x : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @relu
// CHECK: kiln.relu %{{.*}} : tensor<?x64xf32>
func.func @relu(%x: tensor<?x64xf32>) -> tensor<?x64xf32> {
  %y = kiln.relu %x : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// tanh is the default form.
// CHECK-LABEL: func.func @gelu
// CHECK: kiln.gelu %{{.*}} {approximate = #kiln.gelu_approx<erf>} : tensor<4x64xf16>
// CHECK: kiln.gelu %{{.*}} : tensor<4x64xf16>
// CHECK-NOT: approximate
// CHECK: return
func.func @gelu(%x: tensor<4x64xf16>) -> tensor<4x64xf16> {
  %erf = kiln.gelu %x {approximate = #kiln.gelu_approx<erf>} : tensor<4x64xf16>
  %tanh = kiln.gelu %erf {approximate = #kiln.gelu_approx<tanh>} : tensor<4x64xf16>
  return %tanh : tensor<4x64xf16>
}

// CHECK-LABEL: func.func @softmax
// CHECK: kiln.softmax %{{.*}} : tensor<2x4x16xbf16>
func.func @softmax(%x: tensor<2x4x16xbf16>) -> tensor<2x4x16xbf16> {
  %y = kiln.softmax %x : tensor<2x4x16xbf16>
  return %y : tensor<2x4x16xbf16>
}

// CHECK-LABEL: func.func @swiglu
// CHECK-SAME: (%[[G:.*]]: tensor<?x1536xf32>, %[[U:.*]]: tensor<?x1536xf32>)
// CHECK: kiln.swiglu %[[G]], %[[U]] : tensor<?x1536xf32>
func.func @swiglu(%g: tensor<?x1536xf32>, %u: tensor<?x1536xf32>) -> tensor<?x1536xf32> {
  %y = kiln.swiglu %g, %u : tensor<?x1536xf32>
  return %y : tensor<?x1536xf32>
}

// CHECK-LABEL: func.func @geglu
// CHECK: kiln.geglu %{{.*}}, %{{.*}} : tensor<?x1536xf16>
// CHECK: kiln.geglu %{{.*}}, %{{.*}} {approximate = #kiln.gelu_approx<erf>} : tensor<?x1536xf16>
func.func @geglu(%g: tensor<?x1536xf16>, %u: tensor<?x1536xf16>) -> tensor<?x1536xf16> {
  %a = kiln.geglu %g, %u : tensor<?x1536xf16>
  %b = kiln.geglu %a, %u {approximate = #kiln.gelu_approx<erf>} : tensor<?x1536xf16>
  return %b : tensor<?x1536xf16>
}

// CHECK-LABEL: func.func @add_mul
// CHECK-SAME: (%[[A:.*]]: tensor<?x576xf32>, %[[B:.*]]: tensor<?x576xf32>)
// CHECK: %[[S:.*]] = kiln.add %[[A]], %[[B]] : tensor<?x576xf32>
// CHECK: kiln.mul %[[S]], %[[B]] : tensor<?x576xf32>
func.func @add_mul(%a: tensor<?x576xf32>, %b: tensor<?x576xf32>) -> tensor<?x576xf32> {
  %s = kiln.add %a, %b : tensor<?x576xf32>
  %p = kiln.mul %s, %b : tensor<?x576xf32>
  return %p : tensor<?x576xf32>
}

//===----------------------------------------------------------------------===//
// Activation quantization
//===----------------------------------------------------------------------===//

// Symmetric is the default: one scale per group.
// CHECK-LABEL: func.func @quantize_symmetric
// CHECK: %[[C:.*]], %[[S:.*]] = kiln.quantize %{{.*}} {bits = 8 : i64, group = 32 : i64} : tensor<?x128xf32> -> tensor<?x128xi8>, tensor<?x4xf32>
// CHECK: kiln.dequantize %[[C]], %[[S]] {bits = 8 : i64, group = 32 : i64} : tensor<?x128xi8>, tensor<?x4xf32> -> tensor<?x128xf32>
func.func @quantize_symmetric(%x: tensor<?x128xf32>) -> tensor<?x128xf32> {
  %codes, %scales = kiln.quantize %x {bits = 8, group = 32, symmetric = true} : tensor<?x128xf32> -> tensor<?x128xi8>, tensor<?x4xf32>
  %y = kiln.dequantize %codes, %scales {bits = 8, group = 32} : tensor<?x128xi8>, tensor<?x4xf32> -> tensor<?x128xf32>
  return %y : tensor<?x128xf32>
}

// Asymmetric: (scale, zero) pairs.
// CHECK-LABEL: func.func @quantize_asymmetric
// CHECK: %[[C:.*]], %[[S:.*]] = kiln.quantize %{{.*}} {bits = 4 : i64, group = 64 : i64, symmetric = false} : tensor<2x128xf16> -> tensor<2x128xi8>, tensor<2x2x2xf32>
// CHECK: kiln.dequantize %[[C]], %[[S]] {bits = 4 : i64, group = 64 : i64, symmetric = false} : tensor<2x128xi8>, tensor<2x2x2xf32> -> tensor<2x128xf16>
func.func @quantize_asymmetric(%x: tensor<2x128xf16>) -> tensor<2x128xf16> {
  %codes, %scales = kiln.quantize %x {bits = 4, group = 64, symmetric = false} : tensor<2x128xf16> -> tensor<2x128xi8>, tensor<2x2x2xf32>
  %y = kiln.dequantize %codes, %scales {bits = 4, group = 64, symmetric = false} : tensor<2x128xi8>, tensor<2x2x2xf32> -> tensor<2x128xf16>
  return %y : tensor<2x128xf16>
}

// CHECK-LABEL: func.func @linear_rope
// CHECK-SAME: (%[[X:.*]]: tensor<?x8xf32>, %[[W:.*]]: !kiln.weight<16x8xf32>, %[[P:.*]]: index)
// CHECK: kiln.linear %[[X]], %[[W]] rope(%[[P]], #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 1.000000e+04, freq_scale = 1.000000e+00>) : tensor<?x8xf32>, !kiln.weight<16x8xf32> -> tensor<?x16xf32>
func.func @linear_rope(%x: tensor<?x8xf32>, %w: !kiln.weight<16x8xf32>, %p: index) -> tensor<?x16xf32> {
  %y = kiln.linear %x, %w rope(%p, #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 10000.0, freq_scale = 1.0>) : tensor<?x8xf32>, !kiln.weight<16x8xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}

//===----------------------------------------------------------------------===//
// Encoders
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @position_embedding
// CHECK-SAME: (%[[X:[^:]*]]: tensor<?x64xf32>, %[[T:[^:]*]]: !kiln.weight<512x64xf32>, %[[P:[^:]*]]: index
// CHECK: kiln.position_embedding %[[X]], %[[T]][%[[P]]] : tensor<?x64xf32>, !kiln.weight<512x64xf32> -> tensor<?x64xf32>
// CHECK: kiln.position_embedding %{{.*}}, %{{.*}}[%[[P]]] {step = 0 : i64} : tensor<?x64xf32>, !kiln.weight<2x64xf16> -> tensor<?x64xf32>
func.func @position_embedding(%x: tensor<?x64xf32>, %t: !kiln.weight<512x64xf32>, %p: index, %types: !kiln.weight<2x64xf16>) -> tensor<?x64xf32> {
  %y = kiln.position_embedding %x, %t[%p] : tensor<?x64xf32>, !kiln.weight<512x64xf32> -> tensor<?x64xf32>
  %z = kiln.position_embedding %y, %types[%p] {step = 0 : i64} : tensor<?x64xf32>, !kiln.weight<2x64xf16> -> tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @mean_pool
// CHECK: kiln.mean_pool %{{.*}} : tensor<?x384xf32> -> tensor<1x384xf32>
// CHECK: kiln.mean_pool %{{.*}} {normalize = true} : tensor<?x384xf32> -> tensor<?x384xf32>
func.func @mean_pool(%x: tensor<?x384xf32>) -> (tensor<1x384xf32>, tensor<?x384xf32>) {
  %m = kiln.mean_pool %x : tensor<?x384xf32> -> tensor<1x384xf32>
  %n = kiln.mean_pool %x {normalize = true} : tensor<?x384xf32> -> tensor<?x384xf32>
  return %m, %n : tensor<1x384xf32>, tensor<?x384xf32>
}

// Quantized activations (kiln-fuse): the layer's width and the producer
// that quantizes for it.
// CHECK-LABEL: func.func @quantized_activations
// CHECK: kiln.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.99999974E-6 : f32, kiln.quantize_output = 8 : i64}
// CHECK: kiln.linear %{{.*}}, %{{.*}} {activation_bits = 8 : i64} : tensor<?x64xf32>
func.func @quantized_activations(%x: tensor<?x64xf32>, %n: !kiln.weight<64xf32>, %w: !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>) -> tensor<?x64xf32> {
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32, kiln.quantize_output = 8 : i64} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %y = kiln.linear %h, %w {activation_bits = 8 : i64} : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// The blob survives the round trip.
// Communication between the ranks of a distributed model (kiln-shard).
// CHECK-LABEL: func.func @communication
// CHECK: %[[S:.*]] = kiln.all_reduce %{{.*}} : tensor<?x64xf32>
// CHECK: kiln.send %[[S]] to 1 : tensor<?x64xf32>
// CHECK: kiln.recv from 1 rows(%{{.*}}) : tensor<?xi32> -> tensor<?x64xf32>
func.func @communication(%x: tensor<?x64xf32>, %tokens: tensor<?xi32>) -> tensor<?x64xf32> {
  %s = kiln.all_reduce %x : tensor<?x64xf32>
  kiln.send %s to 1 : tensor<?x64xf32>
  %r = kiln.recv from 1 rows(%tokens) : tensor<?xi32> -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// CHECK: {-#
// CHECK-NEXT: dialect_resources: {
// CHECK-NEXT: builtin: {
// CHECK-NEXT: norm_weight: "0x040000000000803F000000400000404000008040"
{-#
  dialect_resources: {
    builtin: {
      norm_weight: "0x040000000000803f000000400000404000008040"
    }
  }
#-}

