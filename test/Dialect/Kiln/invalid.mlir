// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// One case per diagnostic of the kiln dialect's parsers and verifiers, in the
// order of the C++: #kiln.quant and #kiln.sparsity (KilnDialect.cpp), then
// !kiln.weight and !kiln.kv_cache (KilnTypes.cpp), then the ops
// (KilnOps.cpp), then a few of the ODS-generated constraints.

//===----------------------------------------------------------------------===//
// #kiln.quant
//===----------------------------------------------------------------------===//

// expected-error @+1 {{quantization bit width 9 is out of range [2, 8]}}
func.func @quant_bits_high(%w: !kiln.weight<4x32x#kiln.quant<bits = 9, group = 32, scale = f16>>)

// -----

// expected-error @+1 {{quantization bit width 1 is out of range [2, 8]}}
func.func @quant_bits_low(%w: !kiln.weight<4x32x#kiln.quant<bits = 1, group = 32, scale = f16>>)

// -----

// expected-error @+1 {{quantization group size must be positive}}
func.func @quant_group_zero(%w: !kiln.weight<4x32x#kiln.quant<bits = 4, group = 0, scale = f16>>)

// -----

// expected-error @+1 {{group of 4 values at 3 bits does not fill whole bytes}}
func.func @quant_group_bytes(%w: !kiln.weight<4x32x#kiln.quant<bits = 3, group = 4, scale = f16>>)

// -----

// expected-error @+1 {{scale type 'i8' must be f32, f16, bf16, f8E4M3FN or f8E5M2}}
func.func @quant_scale_type(%w: !kiln.weight<4x32x#kiln.quant<bits = 4, group = 32, scale = i8>>)

// -----

// expected-error @+1 {{zero type 'i16' must be a float scale type or an integer of the code width}}
func.func @quant_zero_type(%w: !kiln.weight<4x32x#kiln.quant<bits = 4, group = 32, scale = f16, zero = i16>>)

// -----

// expected-error @+1 {{super-group 100 is not a multiple of group 32}}
func.func @quant_super_group_multiple(%w: !kiln.weight<4x800x#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 100, sub_scale_bits = 6>>)

// -----

// A super-group without sub_scale_bits (its default is 0).
// expected-error @+1 {{sub-scale width 0 is out of range [2, 8]}}
func.func @quant_sub_scale_missing(%w: !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 256>>)

// -----

// expected-error @+1 {{sub-scale width 9 is out of range [2, 8]}}
func.func @quant_sub_scale_wide(%w: !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 256, sub_scale_bits = 9>>)

// -----

// expected-error @+1 {{sub-scales of 3 groups at 6 bits do not fill whole bytes}}
func.func @quant_sub_scale_bytes(%w: !kiln.weight<4x96x#kiln.quant<bits = 4, group = 32, scale = f16, super_group = 96, sub_scale_bits = 6>>)

// -----

// expected-error @+1 {{super-group of 4 values at 3 bits does not fill whole bytes}}
func.func @quant_super_group_bytes(%w: !kiln.weight<4x32x#kiln.quant<bits = 3, group = 4, scale = f16, super_group = 4, sub_scale_bits = 8>>)

// -----

// expected-error @+1 {{sub_scale_bits needs a super_group}}
func.func @quant_sub_scale_alone(%w: !kiln.weight<4x32x#kiln.quant<bits = 4, group = 32, scale = f16, sub_scale_bits = 6>>)

// -----

// Q4_0 has groups of 32, not 64.
// expected-error @+1 {{layout = gguf but no ggml block format has bits = 4, group = 64, scale = f16, zero = none, super_group = 0, sub_scale_bits = 0, codebook = none; expected one of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, IQ1_M, TQ1_0, TQ2_0 (or layout = packed for Kiln's own layout)}}
func.func @gguf_group(%w: !kiln.weight<4x64x#kiln.quant<bits = 4, group = 64, scale = f16, layout = gguf>>)

// -----

// A codebook names a ggml format's table: Kiln's packed codes are linear.
// expected-error @+1 {{codebook = iq4_nl is a ggml format's: it needs layout = gguf}}
func.func @codebook_packed(%w: !kiln.weight<4x64x#kiln.quant<bits = 4, group = 32, scale = f16, codebook = iq4_nl>>)

// -----

// ggml's IQ4_NL codebook has no 8-bit format.
// expected-error @+1 {{layout = gguf but no ggml block format has bits = 8, group = 32, scale = f16, zero = none, super_group = 0, sub_scale_bits = 0, codebook = iq4_nl}}
func.func @codebook_q8(%w: !kiln.weight<4x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, codebook = iq4_nl>>)

// -----

// ggml has no 3-bit one-level format, nor any 7-bit one.
// expected-error @+1 {{layout = gguf but no ggml block format has bits = 3, group = 32, scale = f16, zero = none}}
func.func @gguf_bits(%w: !kiln.weight<4x32x#kiln.quant<bits = 3, group = 32, scale = f16, layout = gguf>>)

// -----

// Q4_K with a bf16 super-block scale.
// expected-error @+1 {{layout = gguf but no ggml block format has bits = 4, group = 32, scale = bf16, zero = f16, super_group = 256, sub_scale_bits = 6}}
func.func @gguf_scale_type(%w: !kiln.weight<4x256x#kiln.quant<bits = 4, group = 32, scale = bf16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>)

// -----

// Q4_1 with an integer zero point instead of an f16 min.
// expected-error @+1 {{layout = gguf but no ggml block format has bits = 4, group = 32, scale = f16, zero = i8}}
func.func @gguf_zero_type(%w: !kiln.weight<4x32x#kiln.quant<bits = 4, group = 32, scale = f16, zero = i8, layout = gguf>>)

// -----

// Q6_K is symmetric: no mins.
// expected-error @+1 {{layout = gguf but no ggml block format has bits = 6, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 8}}
func.func @gguf_q6_k_zero(%w: !kiln.weight<4x256x#kiln.quant<bits = 6, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>>)

// -----

// Q2_K's sub-scales are 4 bits wide.
// expected-error @+1 {{layout = gguf but no ggml block format has bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6}}
func.func @gguf_q2_k_sub_scale(%w: !kiln.weight<4x256x#kiln.quant<bits = 2, group = 16, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>)

// -----

// target_layout takes a target's layout attribute, nothing else.
// expected-error @+2 {{invalid kind of attribute specified}}
// expected-error @+1 {{failed to parse Kiln_QuantSchemeAttr parameter 'target_layout'}}
func.func @target_layout_not_a_layout(%w: !kiln.weight<16x32x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln.rope_style<llama>>>)

// -----

// expected-error @+2 {{expected one of [packed, gguf] for byte layout of a quantized block, got: ggml}}
// expected-error @+1 {{failed to parse Kiln_QuantSchemeAttr parameter 'layout'}}
func.func @quant_layout_name(%w: !kiln.weight<4x32x#kiln.quant<bits = 4, group = 32, scale = f16, layout = ggml>>)

// -----

//===----------------------------------------------------------------------===//
// #kiln.sparsity
//===----------------------------------------------------------------------===//

// expected-error @+1 {{N:M sparsity needs 0 < n < m, got 4:4}}
func.func @sparsity_n_m(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 4, m = 4>>)

// -----

// expected-error @+1 {{N:M sparsity needs 0 < n < m, got 0:4}}
func.func @sparsity_n_zero(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, m = 4>>)

// -----

// expected-error @+1 {{N:M sparsity takes only n and m}}
func.func @sparsity_n_m_nnz(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4, nnz = 3>>)

// -----

// expected-error @+1 {{block sparsity needs positive block_rows and block_cols}}
func.func @sparsity_block_size(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = block, block_rows = 4, nnz = 1>>)

// -----

// expected-error @+1 {{block sparsity takes no n or m}}
func.func @sparsity_block_n(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = block, n = 2, block_rows = 4, block_cols = 4>>)

// -----

// expected-error @+1 {{unstructured sparsity takes only nnz}}
func.func @sparsity_csr_m(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = csr, m = 4, nnz = 3>>)

// -----

// expected-error @+1 {{unstructured sparsity takes only nnz}}
func.func @sparsity_bitmap_block(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = bitmap, block_rows = 4, nnz = 3>>)

// -----

// expected-error @+2 {{expected ::mlir::kiln::SparsityKind to be one of: n_m, bitmap, csr, block}}
// expected-error @+1 {{failed to parse Kiln_SparsityAttr parameter 'kind'}}
func.func @sparsity_kind(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = coo, nnz = 3>>)

// -----

//===----------------------------------------------------------------------===//
// !kiln.weight
//===----------------------------------------------------------------------===//

// expected-error @+1 {{expected a float element type or #kiln.quant}}
func.func @weight_attr_element(%w: !kiln.weight<4x8x#kiln.external<"m.bin", offset = 0, size = 1>>)

// -----

// expected-error @+1 {{expected a float element type or #kiln.quant}}
func.func @weight_no_element(%w: !kiln.weight<4x8x>)

// -----

// expected-error @+1 {{expected 'sparsity'}}
func.func @weight_bad_keyword(%w: !kiln.weight<4x8xf16, density = 1>)

// -----

// expected-error @+1 {{weight must have at least one dimension}}
func.func @weight_rank0(%w: !kiln.weight<f16>)

// -----

// expected-error @+1 {{weight dimension 0 must be positive}}
func.func @weight_zero_dim(%w: !kiln.weight<0x8xf16>)

// -----

// expected-error @+1 {{weight element type 'i8' must be f32, f16, bf16, f8E4M3FN or f8E5M2}}
func.func @weight_int_element(%w: !kiln.weight<4x8xi8>)

// -----

// expected-error @+1 {{weight element type 'f64' must be f32, f16, bf16, f8E4M3FN or f8E5M2}}
func.func @weight_f64_element(%w: !kiln.weight<4x8xf64>)

// -----

// expected-error @+1 {{weight group size 32 does not divide K = 48}}
func.func @weight_group_k(%w: !kiln.weight<4x48x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>)

// -----

// expected-error @+1 {{weight super-group size 256 does not divide K = 128}}
func.func @weight_super_group_k(%w: !kiln.weight<4x128x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>)

// -----

// expected-error @+1 {{weight element count overflows 64 bits}}
func.func @weight_count_overflow(%w: !kiln.weight<4611686018427387904x8xf32>)

// -----

// expected-error @+1 {{a quantized weight can be stored compressed only with n_m or bitmap sparsity}}
func.func @weight_sparse_quant(%w: !kiln.weight<8x64x#kiln.quant<bits = 4, group = 32, scale = f16>, sparsity = #kiln.sparsity<kind = csr, nnz = 10>>)

// -----

// Bitmap compressed (WeightLayout.h, bitmapWeightBytes): rows by 16.
// expected-error @+1 {{a bitmap compressed weight needs 4- or 8-bit symmetric groups of 32 with an f16 scale, rows a multiple of 16 and whole bytes of kept codes, got #kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf> with 8 rows and nnz 10}}
func.func @weight_bitmap_rows(%w: !kiln.weight<8x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 10>>)

// -----

// 4-bit codes two to a byte: an odd count of kept codes is no whole byte.
// expected-error @+1 {{a bitmap compressed weight needs 4- or 8-bit symmetric groups of 32 with an f16 scale, rows a multiple of 16 and whole bytes of kept codes, got #kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf> with 16 rows and nnz 11}}
func.func @weight_bitmap_nibbles(%w: !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 11>>)

// -----

// Q4_1's min: the bitmap form keeps symmetric codes only.
// expected-error @+1 {{a bitmap compressed weight needs 4- or 8-bit symmetric groups of 32 with an f16 scale, rows a multiple of 16 and whole bytes of kept codes, got #kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf> with 16 rows and nnz 10}}
func.func @weight_bitmap_asymmetric(%w: !kiln.weight<16x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 10>>)

// -----

// 5-bit codes: neither of the two widths the bitmap form stores.
// expected-error @+1 {{a bitmap compressed weight needs 4- or 8-bit symmetric groups of 32 with an f16 scale, rows a multiple of 16 and whole bytes of kept codes, got #kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf> with 16 rows and nnz 16}}
func.func @weight_bitmap_bits(%w: !kiln.weight<16x64x#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = bitmap, nnz = 16>>)

// -----

// expected-error @+1 {{a compressed n:m weight needs a symmetric one-level quantization in layout gguf or packed}}
func.func @weight_sparse_quant_zero(%w: !kiln.weight<8x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>)

// -----

// expected-error @+1 {{1:4 compression of 5-bit groups of 16 does not fill whole bytes}}
func.func @weight_sparse_quant_bytes(%w: !kiln.weight<16x64x#kiln.quant<bits = 5, group = 16, scale = f16>, sparsity = #kiln.sparsity<kind = n_m, n = 1, m = 4>>)

// -----

// expected-error @+1 {{a compressed n:m weight interleaves rows by 16, got 8 rows}}
func.func @weight_sparse_quant_rows(%w: !kiln.weight<8x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>)

// -----

// expected-error @+1 {{2:4 sparsity needs K = 6 to be a multiple of 4}}
func.func @weight_n_m_k(%w: !kiln.weight<8x6xf16, sparsity = #kiln.sparsity<kind = n_m, n = 2, m = 4>>)

// -----

// Rows are the product of the outer dimensions: 2 x 3 = 6.
// expected-error @+1 {{block 4x16 does not tile a weight of 6x64}}
func.func @weight_block_tile(%w: !kiln.weight<2x3x64xf16, sparsity = #kiln.sparsity<kind = block, block_rows = 4, block_cols = 16, nnz = 1>>)

// -----

// expected-error @+1 {{nnz 9 exceeds the number of blocks}}
func.func @weight_block_nnz(%w: !kiln.weight<8x64xf16, sparsity = #kiln.sparsity<kind = block, block_rows = 4, block_cols = 16, nnz = 9>>)

// -----

// expected-error @+1 {{nnz 513 exceeds the 512 weight values}}
func.func @weight_csr_nnz(%w: !kiln.weight<8x64xf32, sparsity = #kiln.sparsity<kind = csr, nnz = 513>>)

// -----

// expected-error @+1 {{nnz 33 exceeds the 32 weight values}}
func.func @weight_bitmap_nnz(%w: !kiln.weight<32xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 33>>)

// -----

// The element count fits in 64 bits; its bytes do not.
// expected-error @+1 {{weight storage size overflows 64 bits}}
func.func @weight_storage_overflow(%w: !kiln.weight<3074457345618258602x2xf32>)

// -----

//===----------------------------------------------------------------------===//
// !kiln.kv_cache
//===----------------------------------------------------------------------===//

// expected-error @+1 {{expected layers x context x kv_heads x head_dim, got 3 dimensions}}
func.func @cache_rank(%c: !kiln.kv_cache<2x128x64xf32>)

// -----

// expected-error @+1 {{kv cache dimensions must be positive}}
func.func @cache_zero(%c: !kiln.kv_cache<2x0x1x64xf32>)

// -----

// expected-error @+1 {{kv cache element type 'f8E4M3FN' must be f32, f16 or bf16}}
func.func @cache_element(%c: !kiln.kv_cache<2x128x1x64xf8E4M3FN>)

// -----

// expected-error @+1 {{kv cache size overflows 64 bits}}
func.func @cache_overflow(%c: !kiln.kv_cache<1024x1099511627776x1024x1024xf32>)

// -----

//===----------------------------------------------------------------------===//
// kiln.weight
//===----------------------------------------------------------------------===//

func.func @weight_source_kind() {
  // expected-error @+1 {{'kiln.weight' op source must be #kiln.external, dense_resource or dense elements, got "model.gguf"}}
  %w = kiln.weight "model.gguf" -> !kiln.weight<4xf32>
  return
}

// -----

func.func @weight_empty_path() {
  // expected-error @+1 {{'kiln.weight' op external source has an empty path}}
  %w = kiln.weight #kiln.external<"", offset = 0, size = 16> -> !kiln.weight<4xf32>
  return
}

// -----

func.func @weight_range_overflow() {
  // expected-error @+1 {{'kiln.weight' op external range offset 18446744073709551615 + size 16 overflows 64 bits}}
  %w = kiln.weight #kiln.external<"m.bin", offset = 18446744073709551615, size = 16> -> !kiln.weight<4xf32>
  return
}

// -----

func.func @weight_external_size() {
  // expected-error @+1 {{'kiln.weight' op source holds 2048 bytes but '!kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>' needs 2304}}
  %w = kiln.weight #kiln.external<"m.gguf", offset = 0, size = 2048> -> !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  return
}

// -----

func.func @weight_inline_type() {
  // expected-error @+1 {{'kiln.weight' op inline source must be i8 bytes or 'f32' values, got 'f16'}}
  %w = kiln.weight dense<[1.0, 2.0]> : tensor<2xf16> -> !kiln.weight<2xf32>
  return
}

// -----

func.func @weight_inline_quantized() {
  // expected-error @+1 {{'kiln.weight' op inline source of a quantized weight must be i8 bytes, got 'f32'}}
  %w = kiln.weight dense<1.0> : tensor<18xf32> -> !kiln.weight<1x32x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  return
}

// -----

func.func @weight_inline_sparse() {
  // expected-error @+1 {{'kiln.weight' op inline source of a sparse weight must be i8 bytes, got 'f32'}}
  %w = kiln.weight dense<1.0> : tensor<2xf32> -> !kiln.weight<8xf32, sparsity = #kiln.sparsity<kind = csr, nnz = 1>>
  return
}

// -----

func.func @weight_inline_size() {
  // expected-error @+1 {{'kiln.weight' op source holds 3 bytes but '!kiln.weight<2xf16>' needs 4}}
  %w = kiln.weight dense<[1, 2, 3]> : tensor<3xi8> -> !kiln.weight<2xf16>
  return
}

// -----

func.func @weight_resource_type() {
  // expected-error @+1 {{'kiln.weight' op dense_resource source must be i8 bytes or 'f16' values, got 'i32'}}
  %w = kiln.weight dense_resource<blob> : tensor<2xi32> -> !kiln.weight<4xf16>
  return
}

// -----

// The declared type says how many bytes the blob holds, even when the blob
// itself is elided.
func.func @weight_resource_declared_size() {
  // expected-error @+1 {{'kiln.weight' op dense_resource source type 'tensor<10xi8>' holds 10 bytes but '!kiln.weight<4xf32>' needs 16}}
  %w = kiln.weight dense_resource<blob> : tensor<10xi8> -> !kiln.weight<4xf32>
  return
}

// -----

// A blob of 8 bytes behind a type that claims 16.
func.func @weight_resource_blob_size() {
  // expected-error @+1 {{'kiln.weight' op source holds 8 bytes but '!kiln.weight<4xf32>' needs 16}}
  %w = kiln.weight dense_resource<short_blob> : tensor<16xi8> -> !kiln.weight<4xf32>
  return
}

{-#
  dialect_resources: {
    builtin: {
      short_blob: "0x040000000000803f00000040"
    }
  }
#-}

// -----

func.func @weight_result_type() {
  // expected-error @+1 {{'kiln.weight' op result #0 must be kiln weight, but got 'tensor<4xf32>'}}
  %w = "kiln.weight"() {source = #kiln.external<"m.bin", offset = 0, size = 16>} : () -> tensor<4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// kiln.linear
//===----------------------------------------------------------------------===//

func.func @linear_input_rank(%x: tensor<f32>, %w: !kiln.weight<4x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op input must have rank >= 1, got 'tensor<f32>'}}
  %y = kiln.linear %x, %w : tensor<f32>, !kiln.weight<4x8xf32> -> tensor<4xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<2x8xf32>, %w: !kiln.weight<8xf32>) {
  // expected-error @+1 {{'kiln.linear' op weight must be 2-D [N, K], got '!kiln.weight<8xf32>'}}
  %y = kiln.linear %x, %w : tensor<2x8xf32>, !kiln.weight<8xf32> -> tensor<2x8xf32>
  return
}

// -----

func.func @linear_k(%x: tensor<2x16xf32>, %w: !kiln.weight<4x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op input last dimension 16 does not match weight K = 8}}
  %y = kiln.linear %x, %w : tensor<2x16xf32>, !kiln.weight<4x8xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_bias_shape(%x: tensor<2x8xf32>, %w: !kiln.weight<4x8xf32>, %b: !kiln.weight<8xf32>) {
  // expected-error @+1 {{'kiln.linear' op bias must be a 1-D weight of 4 values, got '!kiln.weight<8xf32>'}}
  %y = kiln.linear %x, %w, bias %b : tensor<2x8xf32>, !kiln.weight<4x8xf32>, !kiln.weight<8xf32> -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_bias_quantized(%x: tensor<2x32xf32>, %w: !kiln.weight<32x32xf32>, %b: !kiln.weight<32x#kiln.quant<bits = 8, group = 32, scale = f16>>) {
  // expected-error @+1 {{'kiln.linear' op bias must be a dense float weight (not quantized or sparse), got '!kiln.weight<32x#kiln.quant<bits = 8, group = 32, scale = f16>>'}}
  %y = kiln.linear %x, %w, bias %b : tensor<2x32xf32>, !kiln.weight<32x32xf32>, !kiln.weight<32x#kiln.quant<bits = 8, group = 32, scale = f16>> -> tensor<2x32xf32>
  return
}

// -----

func.func @linear_residual_type(%x: tensor<2x8xf32>, %w: !kiln.weight<4x8xf32>, %r: tensor<2x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op residual type 'tensor<2x8xf32>' differs from result type 'tensor<2x4xf32>'}}
  %y = "kiln.linear"(%x, %w, %r) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0>}> : (tensor<2x8xf32>, !kiln.weight<4x8xf32>, tensor<2x8xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_rope_without_position(%x: tensor<2x8xf32>, %w: !kiln.weight<16x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op needs both a rope position and a #kiln.rope, or neither}}
  %y = "kiln.linear"(%x, %w) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 0>, rope = #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 10000.0, freq_scale = 1.0>}> : (tensor<2x8xf32>, !kiln.weight<16x8xf32>) -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_rope_and_residual(%x: tensor<2x8xf32>, %w: !kiln.weight<16x8xf32>, %r: tensor<2x16xf32>, %p: index) {
  // expected-error @+1 {{'kiln.linear' op cannot have both a residual and a rope (their order would be ambiguous)}}
  %y = "kiln.linear"(%x, %w, %r, %p) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 1>, rope = #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 10000.0, freq_scale = 1.0>}> : (tensor<2x8xf32>, !kiln.weight<16x8xf32>, tensor<2x16xf32>, index) -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_rope_width(%x: tensor<2x8xf32>, %w: !kiln.weight<16x8xf32>, %p: index) {
  // expected-error @+1 {{'kiln.linear' op result must be [tokens, num_heads * head_dim = 8] for its rope, got 'tensor<2x16xf32>'}}
  %y = kiln.linear %x, %w rope(%p, #kiln.rope<num_heads = 1, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 10000.0, freq_scale = 1.0>) : tensor<2x8xf32>, !kiln.weight<16x8xf32> -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_rope_rotary_dim(%x: tensor<2x8xf32>, %w: !kiln.weight<16x8xf32>, %p: index) {
  // expected-error @+1 {{rotary_dim 3 must be even and in (0, head_dim = 8]}}
  %y = kiln.linear %x, %w rope(%p, #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 3, style = llama, freq_base = 10000.0, freq_scale = 1.0>) : tensor<2x8xf32>, !kiln.weight<16x8xf32> -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_rope_freq_scale(%x: tensor<2x8xf32>, %w: !kiln.weight<16x8xf32>, %p: index) {
  // expected-error @+1 {{freq_scale must be positive, got 0}}
  %y = kiln.linear %x, %w rope(%p, #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 10000.0, freq_scale = 0.0>) : tensor<2x8xf32>, !kiln.weight<16x8xf32> -> tensor<2x16xf32>
  return
}

// -----

func.func @linear_element_type(%x: tensor<2x8xf32>, %w: !kiln.weight<4x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op result element type 'f16' differs from input element type 'f32'}}
  %y = kiln.linear %x, %w : tensor<2x8xf32>, !kiln.weight<4x8xf32> -> tensor<2x4xf16>
  return
}

// -----

func.func @linear_result_rank(%x: tensor<2x8xf32>, %w: !kiln.weight<4x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op result rank 3 does not match input rank 2}}
  %y = kiln.linear %x, %w : tensor<2x8xf32>, !kiln.weight<4x8xf32> -> tensor<1x2x4xf32>
  return
}

// -----

func.func @linear_result_batch(%x: tensor<2x3x8xf32>, %w: !kiln.weight<4x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op result dimension 1 is 5, expected 3}}
  %y = kiln.linear %x, %w : tensor<2x3x8xf32>, !kiln.weight<4x8xf32> -> tensor<2x5x4xf32>
  return
}

// -----

func.func @linear_result_n(%x: tensor<?x8xf32>, %w: !kiln.weight<4x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op result last dimension is 8, expected 4}}
  %y = kiln.linear %x, %w : tensor<?x8xf32>, !kiln.weight<4x8xf32> -> tensor<?x8xf32>
  return
}

// -----

// ODS type constraint: activations are f32, f16 or bf16 tensors.
func.func @linear_int_input(%x: tensor<2x8xi32>, %w: !kiln.weight<4x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op operand #0 must be ranked tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<2x8xi32>'}}
  %y = "kiln.linear"(%x, %w) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 0>}> : (tensor<2x8xi32>, !kiln.weight<4x8xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @linear_weight_operand(%x: tensor<2x8xf32>, %w: tensor<4x8xf32>) {
  // expected-error @+1 {{'kiln.linear' op operand #1 must be kiln weight, but got 'tensor<4x8xf32>'}}
  %y = "kiln.linear"(%x, %w) <{operandSegmentSizes = array<i32: 1, 1, 0, 0, 0>}> : (tensor<2x8xf32>, tensor<4x8xf32>) -> tensor<2x4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// kiln.embedding
//===----------------------------------------------------------------------===//

func.func @embedding_table_rank(%t: !kiln.weight<1000xf32>, %ids: tensor<4xi32>) {
  // expected-error @+1 {{'kiln.embedding' op table must be 2-D [vocab, dim], got '!kiln.weight<1000xf32>'}}
  %e = kiln.embedding %t[%ids] : !kiln.weight<1000xf32>, tensor<4xi32> -> tensor<4x1xf32>
  return
}

// -----

func.func @embedding_sparse(%t: !kiln.weight<100x64xf32, sparsity = #kiln.sparsity<kind = csr, nnz = 10>>, %ids: tensor<4xi32>) {
  // expected-error @+1 {{'kiln.embedding' op table must not be sparse}}
  %e = kiln.embedding %t[%ids] : !kiln.weight<100x64xf32, sparsity = #kiln.sparsity<kind = csr, nnz = 10>>, tensor<4xi32> -> tensor<4x64xf32>
  return
}

// -----

func.func @embedding_ids_rank(%t: !kiln.weight<100x64xf32>, %ids: tensor<2x4xi32>) {
  // expected-error @+1 {{'kiln.embedding' op ids must be 1-D, got 'tensor<2x4xi32>'}}
  %e = kiln.embedding %t[%ids] : !kiln.weight<100x64xf32>, tensor<2x4xi32> -> tensor<8x64xf32>
  return
}

// -----

// A dynamic dimension reads `?`.
func.func @embedding_result(%t: !kiln.weight<100x64xf32>, %ids: tensor<?xi32>) {
  // expected-error @+1 {{'kiln.embedding' op result must be [?, 64], got 'tensor<?x32xf32>'}}
  %e = kiln.embedding %t[%ids] : !kiln.weight<100x64xf32>, tensor<?xi32> -> tensor<?x32xf32>
  return
}

// -----

func.func @embedding_result_rank(%t: !kiln.weight<100x64xf32>, %ids: tensor<4xi32>) {
  // expected-error @+1 {{'kiln.embedding' op result must be [4, 64], got 'tensor<256xf32>'}}
  %e = kiln.embedding %t[%ids] : !kiln.weight<100x64xf32>, tensor<4xi32> -> tensor<256xf32>
  return
}

// -----

func.func @embedding_scale_inf(%t: !kiln.weight<100x64xf32>, %ids: tensor<4xi32>) {
  // expected-error @+1 {{'kiln.embedding' op scale must be finite, got 0x7F800000 : f32}}
  %e = kiln.embedding %t[%ids] {scale = 0x7F800000 : f32} : !kiln.weight<100x64xf32>, tensor<4xi32> -> tensor<4x64xf32>
  return
}

// -----

// ODS type constraint: token ids are i32.
func.func @embedding_ids_i64(%t: !kiln.weight<100x64xf32>, %ids: tensor<4xi64>) {
  // expected-error @+1 {{'kiln.embedding' op operand #1 must be ranked tensor of 32-bit signless integer values, but got 'tensor<4xi64>'}}
  %e = "kiln.embedding"(%t, %ids) : (!kiln.weight<100x64xf32>, tensor<4xi64>) -> tensor<4x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// kiln.rms_norm, kiln.layer_norm
//===----------------------------------------------------------------------===//

func.func @norm_result(%x: tensor<2x64xf32>, %w: !kiln.weight<64xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op result type 'tensor<2x64xf16>' differs from input type 'tensor<2x64xf32>'}}
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<2x64xf32>, !kiln.weight<64xf32> -> tensor<2x64xf16>
  return
}

// -----

func.func @norm_rank0(%x: tensor<f32>, %w: !kiln.weight<1xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op input must have rank >= 1, got 'tensor<f32>'}}
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<f32>, !kiln.weight<1xf32> -> tensor<f32>
  return
}

// -----

func.func @norm_dynamic(%x: tensor<2x?xf32>, %w: !kiln.weight<64xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op normalized (last) dimension must be static}}
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<2x?xf32>, !kiln.weight<64xf32> -> tensor<2x?xf32>
  return
}

// -----

func.func @norm_epsilon(%x: tensor<2x64xf32>, %w: !kiln.weight<64xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op epsilon must be positive, got 0}}
  %y = kiln.rms_norm %x, %w {epsilon = 0.0 : f32} : tensor<2x64xf32>, !kiln.weight<64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @norm_weight(%x: tensor<2x64xf32>, %w: !kiln.weight<32xf32>) {
  // expected-error @+1 {{'kiln.rms_norm' op weight must be a 1-D weight of 64 values, got '!kiln.weight<32xf32>'}}
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<2x64xf32>, !kiln.weight<32xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @norm_weight_sparse(%x: tensor<2x64xf32>, %w: !kiln.weight<64xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 3>>) {
  // expected-error @+1 {{'kiln.rms_norm' op weight must be a dense float weight (not quantized or sparse)}}
  %y = kiln.rms_norm %x, %w {epsilon = 1.0e-5 : f32} : tensor<2x64xf32>, !kiln.weight<64xf32, sparsity = #kiln.sparsity<kind = bitmap, nnz = 3>> -> tensor<2x64xf32>
  return
}

// -----

func.func @layer_norm_bias(%x: tensor<2x64xf32>, %w: !kiln.weight<64xf32>, %b: !kiln.weight<2x64xf32>) {
  // expected-error @+1 {{'kiln.layer_norm' op bias must be a 1-D weight of 64 values, got '!kiln.weight<2x64xf32>'}}
  %y = kiln.layer_norm %x, %w, bias %b {epsilon = 1.0e-5 : f32} : tensor<2x64xf32>, !kiln.weight<64xf32>, !kiln.weight<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

// ODS: epsilon is required.
func.func @norm_no_epsilon(%x: tensor<2x64xf32>, %w: !kiln.weight<64xf32>) {
  // expected-error @+1 {{'kiln.layer_norm' op requires attribute 'epsilon'}}
  %y = kiln.layer_norm %x, %w : tensor<2x64xf32>, !kiln.weight<64xf32> -> tensor<2x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// kiln.rope
//===----------------------------------------------------------------------===//

func.func @rope_result(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op result type 'tensor<2x64xf16>' must equal input type 'tensor<2x64xf32>'}}
  %y = kiln.rope %x, %p {num_heads = 1, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf16>
  return
}

// -----

func.func @rope_factor_count(%x: tensor<2x16xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op freq_factors has 3 values, expected rotary_dim / 2 = 4}}
  %y = kiln.rope %x, %p {num_heads = 2, head_dim = 8, rotary_dim = 8, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32, freq_factors = array<f32: 1.0, 1.0, 1.0>} : tensor<2x16xf32> -> tensor<2x16xf32>
  return
}

// -----

func.func @rope_factor_negative(%x: tensor<2x16xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op freq_factors must be positive, got -1}}
  %y = kiln.rope %x, %p {num_heads = 2, head_dim = 8, rotary_dim = 8, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32, freq_factors = array<f32: 1.0, -1.0, 1.0, 1.0>} : tensor<2x16xf32> -> tensor<2x16xf32>
  return
}

// -----

func.func @rope_magnitude(%x: tensor<2x16xf32>, %p: index, %w: !kiln.weight<16x16xf32>) {
  // expected-error @+1 {{magnitude must be positive, got 0}}
  %y = kiln.linear %x, %w rope(%p, #kiln.rope<num_heads = 2, head_dim = 8, rotary_dim = 8, style = llama, freq_base = 10000.0, freq_scale = 1.0, magnitude = 0.0>) : tensor<2x16xf32>, !kiln.weight<16x16xf32> -> tensor<2x16xf32>
  return
}

// -----

func.func @rope_rank(%x: tensor<2x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op input must be 2-D [tokens, heads * head_dim], got 'tensor<2x1x64xf32>'}}
  %y = kiln.rope %x, %p {num_heads = 1, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<2x1x64xf32> -> tensor<2x1x64xf32>
  return
}

// -----

func.func @rope_heads(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op num_heads and head_dim must be positive, got 0 and 64}}
  %y = kiln.rope %x, %p {num_heads = 0, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_overflow(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op num_heads * head_dim = 4294967296 * 4294967296 overflows 64 bits}}
  %y = kiln.rope %x, %p {num_heads = 4294967296, head_dim = 4294967296, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_position_and_positions(%x: tensor<2x64xf32>, %p: index, %ps: tensor<2xi32>) {
  // expected-error @+1 {{'kiln.rope' op takes a first position or one position per token, not both}}
  %y = kiln.rope %x, %p positions %ps : tensor<2xi32> {num_heads = 1, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_no_position(%x: tensor<2x64xf32>) {
  // expected-error @+1 {{'kiln.rope' op needs a first position or one position per token}}
  %y = kiln.rope %x, {num_heads = 1, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_positions_count(%x: tensor<2x64xf32>, %ps: tensor<3xi32>) {
  // expected-error @+1 {{'kiln.rope' op has 3 positions for 2 tokens}}
  %y = kiln.rope %x, positions %ps : tensor<3xi32> {num_heads = 1, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_width(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op last dimension 64 is not num_heads * head_dim = 128}}
  %y = kiln.rope %x, %p {num_heads = 2, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_rotary_odd(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op rotary_dim 33 must be even and in (0, head_dim = 64]}}
  %y = kiln.rope %x, %p {num_heads = 1, head_dim = 64, rotary_dim = 33, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_rotary_wide(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op rotary_dim 128 must be even and in (0, head_dim = 64]}}
  %y = kiln.rope %x, %p {num_heads = 1, head_dim = 64, rotary_dim = 128, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_freq_base(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op freq_base must be positive, got -1}}
  %y = kiln.rope %x, %p {num_heads = 1, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = -1.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_freq_scale(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.rope' op freq_scale must be positive, got 0}}
  %y = kiln.rope %x, %p {num_heads = 1, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32, freq_scale = 0.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @rope_style(%x: tensor<2x64xf32>, %p: index) {
  // expected-error @+2 {{expected ::mlir::kiln::RopeStyle to be one of: llama, neox}}
  // expected-error @+1 {{failed to parse Kiln_RopeStyleAttr parameter 'value'}}
  %y = kiln.rope %x, %p {num_heads = 1, head_dim = 64, rotary_dim = 64, style = #kiln.rope_style<gptj>, freq_base = 10000.0 : f32} : tensor<2x64xf32> -> tensor<2x64xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// kiln.attention
//===----------------------------------------------------------------------===//

func.func @attention_rank(%q: tensor<2x4x64xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op query, key and value must be 2-D [tokens, heads * head_dim], got 'tensor<2x4x64xf32>', 'tensor<2x64xf32>' and 'tensor<2x64xf32>'}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.125 : f32} : tensor<2x4x64xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_element_types(%q: tensor<2x256xf32>, %k: tensor<2x64xf16>, %v: tensor<2x64xf16>, %c: !kiln.kv_cache<2x128x1x64xf16>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op query, key and value must have one element type, got 'f32', 'f16' and 'f16'}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf16>, tensor<2x64xf16>, !kiln.kv_cache<2x128x1x64xf16> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_gqa(%q: tensor<2x192xf32>, %k: tensor<2x128xf32>, %v: tensor<2x128xf32>, %c: !kiln.kv_cache<2x128x2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op num_heads 3 is not a positive multiple of the cache's kv_heads 2}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 3, scale = 0.125 : f32} : tensor<2x192xf32>, tensor<2x128xf32>, tensor<2x128xf32>, !kiln.kv_cache<2x128x2x64xf32> -> tensor<2x192xf32>
  return
}

// -----

func.func @attention_overflow(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op num_heads * head_dim = 1152921504606846976 * 64 overflows 64 bits}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 1152921504606846976, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_query_width(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op query last dimension 256 is not num_heads * head_dim = 512}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 8, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_kv_width(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x?xf32>, %c: !kiln.kv_cache<2x128x2x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op key and value last dimension must be kv_heads * head_dim = 128, got 64 and ?}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x?xf32>, !kiln.kv_cache<2x128x2x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_tokens(%q: tensor<2x256xf32>, %k: tensor<3x64xf32>, %v: tensor<3x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op query, key and value must have the same tokens}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<3x64xf32>, tensor<3x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_result(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op result type 'tensor<?x256xf32>' must equal query type 'tensor<2x256xf32>'}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<?x256xf32>
  return
}

// -----

func.func @attention_layer(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op layer 2 is outside the cache's 2 layers}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 2, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_layer_negative(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op layer -1 is outside the cache's 2 layers}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = -1, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_window(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op sliding_window must be >= 0, got -4}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.125 : f32, sliding_window = -4} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_softcap(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op softcap must be >= 0, got -3}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.125 : f32, softcap = -3.0 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

// NaN is not a cap.
func.func @attention_softcap_nan(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op softcap must be >= 0, got nan}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.125 : f32, softcap = 0x7FC00000 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_scale(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op scale must be positive, got 0}}
  %a = kiln.attention %q, %k, %v, %c[%p] {layer = 0, num_heads = 4, scale = 0.0 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

// ODS type constraint: the cache operand.
func.func @attention_cache_operand(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: memref<2x128x1x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.attention' op operand #3 must be kiln kv cache, but got 'memref<2x128x1x64xf32>'}}
  %a = "kiln.attention"(%q, %k, %v, %c, %p) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0>}> {layer = 0, num_heads = 4, scale = 0.125 : f32} : (tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, memref<2x128x1x64xf32>, index) -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_slots_without_positions(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %s: tensor<2xi32>) {
  // expected-error @+1 {{'kiln.attention' op takes slots and positions together}}
  %a = "kiln.attention"(%q, %k, %v, %c, %s) <{operandSegmentSizes = array<i32: 1, 1, 1, 1, 0, 1, 0>}> {layer = 0, num_heads = 4, scale = 0.125 : f32} : (tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32>, tensor<2xi32>) -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_position_and_positions(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %p: index, %s: tensor<2xi32>, %ps: tensor<2xi32>) {
  // expected-error @+1 {{'kiln.attention' op takes a first position or each token's slot and position, not both}}
  %a = kiln.attention %q, %k, %v, %c[%p slots %s, positions %ps : tensor<2xi32>, tensor<2xi32>] {layer = 0, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_no_position(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>) {
  // expected-error @+1 {{'kiln.attention' op needs a first position or each token's slot and position}}
  %a = kiln.attention %q, %k, %v, %c[] {layer = 0, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_per_sequence_not_causal(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %s: tensor<2xi32>, %ps: tensor<2xi32>) {
  // expected-error @+1 {{'kiln.attention' op over several sequences must be causal}}
  %a = kiln.attention %q, %k, %v, %c[slots %s, positions %ps : tensor<2xi32>, tensor<2xi32>] {layer = 0, num_heads = 4, scale = 0.125 : f32, causal = false} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

func.func @attention_slots_count(%q: tensor<2x256xf32>, %k: tensor<2x64xf32>, %v: tensor<2x64xf32>, %c: !kiln.kv_cache<2x128x1x64xf32>, %s: tensor<3xi32>, %ps: tensor<2xi32>) {
  // expected-error @+1 {{'kiln.attention' op has 3 slots or positions for 2 tokens}}
  %a = kiln.attention %q, %k, %v, %c[slots %s, positions %ps : tensor<3xi32>, tensor<2xi32>] {layer = 0, num_heads = 4, scale = 0.125 : f32} : tensor<2x256xf32>, tensor<2x64xf32>, tensor<2x64xf32>, !kiln.kv_cache<2x128x1x64xf32> -> tensor<2x256xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// Activations and elementwise ops (ODS-generated checks only)
//===----------------------------------------------------------------------===//

func.func @add_types(%a: tensor<4xf32>, %b: tensor<4xf16>) {
  // expected-error @+1 {{'kiln.add' op requires the same type for all operands and results}}
  %s = "kiln.add"(%a, %b) : (tensor<4xf32>, tensor<4xf16>) -> tensor<4xf32>
  return
}

// -----

func.func @silu_int(%a: tensor<4xi32>) {
  // expected-error @+1 {{'kiln.silu' op operand #0 must be ranked tensor of 32-bit float or 16-bit float or bfloat16 type values, but got 'tensor<4xi32>'}}
  %s = kiln.silu %a : tensor<4xi32>
  return
}

// -----

func.func @relu_shape(%a: tensor<4x16xf32>) {
  // expected-error @+1 {{'kiln.relu' op requires the same type for all operands and results}}
  %r = "kiln.relu"(%a) : (tensor<4x16xf32>) -> tensor<4x32xf32>
  return
}

// -----

func.func @gelu_approx(%a: tensor<4xf32>) {
  // expected-error @+2 {{expected ::mlir::kiln::GeluApprox to be one of: erf, tanh}}
  // expected-error @+1 {{failed to parse Kiln_GeluApproxAttr parameter 'value'}}
  %s = kiln.gelu %a {approximate = #kiln.gelu_approx<sigmoid>} : tensor<4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// kiln.quantize, kiln.dequantize
//===----------------------------------------------------------------------===//

func.func @quantize_bits(%x: tensor<2x64xf32>) {
  // expected-error @+1 {{'kiln.quantize' op bit width 16 is out of range [2, 8]}}
  %c, %s = kiln.quantize %x {bits = 16, group = 32} : tensor<2x64xf32> -> tensor<2x64xi8>, tensor<2x2xf32>
  return
}

// -----

func.func @quantize_group(%x: tensor<2x64xf32>) {
  // expected-error @+1 {{'kiln.quantize' op group size must be positive, got 0}}
  %c, %s = kiln.quantize %x {bits = 8, group = 0} : tensor<2x64xf32> -> tensor<2x64xi8>, tensor<2x2xf32>
  return
}

// -----

// Used to crash: a rank-0 tensor has no last dimension to group.
func.func @quantize_rank0(%x: tensor<f32>) {
  // expected-error @+1 {{'kiln.quantize' op float operand must have rank >= 1, got 'tensor<f32>'}}
  %c, %s = kiln.quantize %x {bits = 8, group = 1} : tensor<f32> -> tensor<i8>, tensor<f32>
  return
}

// -----

func.func @quantize_codes_shape(%x: tensor<2x64xf32>) {
  // expected-error @+1 {{'kiln.quantize' op codes shape must equal the float shape, got 'tensor<2x32xi8>' and 'tensor<2x64xf32>'}}
  %c, %s = kiln.quantize %x {bits = 8, group = 32} : tensor<2x64xf32> -> tensor<2x32xi8>, tensor<2x2xf32>
  return
}

// -----

func.func @quantize_dynamic(%x: tensor<2x?xf32>) {
  // expected-error @+1 {{'kiln.quantize' op last (grouped) dimension must be static, got 'tensor<2x?xf32>'}}
  %c, %s = kiln.quantize %x {bits = 8, group = 32} : tensor<2x?xf32> -> tensor<2x?xi8>, tensor<2x?xf32>
  return
}

// -----

func.func @quantize_divide(%x: tensor<2x48xf32>) {
  // expected-error @+1 {{'kiln.quantize' op group size 32 does not divide the last dimension 48}}
  %c, %s = kiln.quantize %x {bits = 8, group = 32} : tensor<2x48xf32> -> tensor<2x48xi8>, tensor<2x2xf32>
  return
}

// -----

func.func @quantize_scales_rank(%x: tensor<2x64xf32>) {
  // expected-error @+1 {{'kiln.quantize' op scales must have rank 3 ([..., K / group, 2]), got 'tensor<2x2xf32>'}}
  %c, %s = kiln.quantize %x {bits = 4, group = 32, symmetric = false} : tensor<2x64xf32> -> tensor<2x64xi8>, tensor<2x2xf32>
  return
}

// -----

func.func @quantize_scales_dim(%x: tensor<2x64xf32>) {
  // expected-error @+1 {{'kiln.quantize' op scales dimension 1 is 4, expected 2}}
  %c, %s = kiln.quantize %x {bits = 8, group = 32} : tensor<2x64xf32> -> tensor<2x64xi8>, tensor<2x4xf32>
  return
}

// -----

func.func @dequantize_scales_rank(%c: tensor<2x64xi8>, %s: tensor<2x2x2xf32>) {
  // expected-error @+1 {{'kiln.dequantize' op scales must have rank 2 ([..., K / group]), got 'tensor<2x2x2xf32>'}}
  %y = kiln.dequantize %c, %s {bits = 8, group = 32} : tensor<2x64xi8>, tensor<2x2x2xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @dequantize_shape(%c: tensor<3x64xi8>, %s: tensor<3x2xf32>) {
  // expected-error @+1 {{'kiln.dequantize' op codes shape must equal the float shape, got 'tensor<3x64xi8>' and 'tensor<2x64xf32>'}}
  %y = kiln.dequantize %c, %s {bits = 8, group = 32} : tensor<3x64xi8>, tensor<3x2xf32> -> tensor<2x64xf32>
  return
}

// -----

// ODS type constraint: codes are i8.
func.func @quantize_codes_type(%x: tensor<2x64xf32>) {
  // expected-error @+1 {{'kiln.quantize' op result #0 must be ranked tensor of 8-bit signless integer values, but got 'tensor<2x64xi32>'}}
  %c, %s = kiln.quantize %x {bits = 8, group = 32} : tensor<2x64xf32> -> tensor<2x64xi32>, tensor<2x2xf32>
  return
}

// -----

// The kiln.* function attributes are contracts between stages, verified by
// the dialect.
// expected-error @+1 {{'func.func' op attribute 'kiln.max_tokens' must be an i64 integer >= 1, got 0 : i64}}
func.func @max_tokens_zero() attributes {kiln.max_tokens = 0} {
  return
}

// -----

// expected-error @+1 {{'func.func' op attribute 'kiln.tied_results' needs one entry per result (1), got 2}}
func.func @tied_count(%c: tensor<4xf32>) -> tensor<4xf32> attributes {kiln.tied_results = [0, -1]} {
  return %c : tensor<4xf32>
}

// -----

// expected-error @+1 {{'func.func' op attribute 'kiln.tied_results' entry 0 must be -1 or the index of an argument of the result's type 'tensor<4xf32>', got 0 : i64}}
func.func @tied_type(%c: tensor<8xf32>) -> tensor<4xf32> attributes {kiln.tied_results = [0]} {
  %e = tensor.empty() : tensor<4xf32>
  return %e : tensor<4xf32>
}

// -----

// expected-error @+1 {{'func.func' op attribute 'kiln.scratch_bytes' must be an i64 integer >= 0, got "lots"}}
func.func @scratch_string() attributes {kiln.scratch_bytes = "lots"} {
  return
}

// -----

// expected-error @+1 {{'func.func' op attribute 'kiln.weight_file' must be a non-empty string, got ""}}
func.func @weight_file_empty() attributes {kiln.weight_file = ""} {
  return
}

// -----

// expected-error @+1 {{'func.func' op unknown kiln attribute 'kiln.max_token' (kiln.max_tokens, kiln.tied_results, kiln.slot, kiln.planned_bytes, kiln.scratch_bytes, kiln.weight_file, kiln.cuda_kernels and kiln.quantize_output are defined)}}
func.func @misspelled() attributes {kiln.max_token = 8} {
  return
}

// -----

func.func @slot_size(%x: tensor<4x16xf32>) -> tensor<4x16xf32> {
  // expected-error @+1 {{'kiln.silu' op attribute 'kiln.slot' must hold an [offset >= 0, size > 0] pair per result ([-1, 0]: none), got array<i64: 0, 0>}}
  %y = kiln.silu %x {kiln.slot = array<i64: 0, 0>} : tensor<4x16xf32>
  return %y : tensor<4x16xf32>
}

// -----

// expected-error @+1 {{'func.func' op attribute 'kiln.cuda_kernels' must be an array of non-empty kernel names, got ["kiln_silu", ""]}}
func.func @empty_kernel_name() attributes {kiln.cuda_kernels = ["kiln_silu", ""]} {
  return
}

// -----

//===----------------------------------------------------------------------===//
// kiln.position_embedding, kiln.mean_pool
//===----------------------------------------------------------------------===//

func.func @position_embedding_width(%x: tensor<?x32xf32>, %t: !kiln.weight<512x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.position_embedding' op input must be [tokens, 64] like the table's rows, got 'tensor<?x32xf32>'}}
  %y = kiln.position_embedding %x, %t[%p] : tensor<?x32xf32>, !kiln.weight<512x64xf32> -> tensor<?x32xf32>
  return
}

// -----

func.func @position_embedding_step(%x: tensor<?x64xf32>, %t: !kiln.weight<512x64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.position_embedding' op step must be 0 (one row for every token) or 1 (a row per position), got 2}}
  %y = kiln.position_embedding %x, %t[%p] {step = 2 : i64} : tensor<?x64xf32>, !kiln.weight<512x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @position_embedding_table_rank(%x: tensor<?x64xf32>, %t: !kiln.weight<64xf32>, %p: index) {
  // expected-error @+1 {{'kiln.position_embedding' op table must be 2-D [positions, dim], got '!kiln.weight<64xf32>'}}
  %y = kiln.position_embedding %x, %t[%p] : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @mean_pool_rows(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{'kiln.mean_pool' op result must be [1, 64] of 'f32', got 'tensor<2x64xf32>'}}
  %y = kiln.mean_pool %x : tensor<?x64xf32> -> tensor<2x64xf32>
  return
}

// -----

func.func @mean_pool_dynamic_dim(%x: tensor<4x?xf32>) {
  // expected-error @+1 {{'kiln.mean_pool' op input must be 2-D [tokens, dim] with a static dim, got 'tensor<4x?xf32>'}}
  %y = kiln.mean_pool %x : tensor<4x?xf32> -> tensor<1x64xf32>
  return
}

// -----

func.func @activation_bits_float_weight(%x: tensor<?x64xf32>, %w: !kiln.weight<64x64xf32>) {
  // expected-error @+1 {{'kiln.linear' op activation_bits needs a weight with one scale per 32 values along K (Q4_0..Q8_0, packed groups of a multiple of 32, rows16), got '!kiln.weight<64x64xf32>'}}
  %y = kiln.linear %x, %w {activation_bits = 8 : i64} : tensor<?x64xf32>, !kiln.weight<64x64xf32> -> tensor<?x64xf32>
  return
}

// -----

func.func @activation_bits_range(%x: tensor<?x64xf32>, %w: !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>) {
  // expected-error @+1 {{'kiln.linear' op attribute 'activation_bits' failed to satisfy constraint}}
  %y = kiln.linear %x, %w {activation_bits = 9 : i64} : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<?x64xf32>
  return
}

// -----

func.func @quantize_output_without_reader(%x: tensor<?x64xf32>, %n: !kiln.weight<64xf32>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kiln.rms_norm' op has 'kiln.quantize_output' = 8 but no linear layer with activation_bits = 8 takes its result}}
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32, kiln.quantize_output = 8 : i64} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  return %h : tensor<?x64xf32>
}

// -----

func.func @quantize_output_bits(%x: tensor<?x64xf32>, %n: !kiln.weight<64xf32>, %w: !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>) -> tensor<?x64xf32> {
  // expected-error @+1 {{'kiln.rms_norm' op has 'kiln.quantize_output' = 5 but no linear layer with activation_bits = 5 takes its result}}
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32, kiln.quantize_output = 5 : i64} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %y = kiln.linear %h, %w {activation_bits = 8 : i64} : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

func.func @quantize_output_shape(%x: tensor<?x48xf32>, %y: tensor<?x48xf32>) -> tensor<?x48xf32> {
  // expected-error @+1 {{'kiln.add' op attribute 'kiln.quantize_output' belongs on a kiln op with one [tokens, 32 * n] result}}
  %s = kiln.add %x, %y {kiln.quantize_output = 8 : i64} : tensor<?x48xf32>
  return %s : tensor<?x48xf32>
}

// -----

func.func @send_negative_peer(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{'kiln.send' op peer must be a rank >= 0, got -1}}
  kiln.send %x to -1 : tensor<?x64xf32>
  return
}

// -----

func.func @recv_rows_mismatch(%t: tensor<3xi32>) {
  // expected-error @+1 {{'kiln.recv' op result has 4 rows but rows has 3}}
  %y = kiln.recv from 0 rows(%t) : tensor<3xi32> -> tensor<4x64xf32>
  return
}

// -----

func.func @recv_dynamic_width(%t: tensor<?xi32>) {
  // expected-error @+1 {{'kiln.recv' op result dimensions after the first must be static, got 'tensor<?x?xf32>'}}
  %y = kiln.recv from 0 rows(%t) : tensor<?xi32> -> tensor<?x?xf32>
  return
}

// -----

func.func @all_reduce_types(%x: tensor<?x64xf32>) {
  // expected-error @+1 {{'kiln.all_reduce' op requires the same type for all operands and results}}
  %y = "kiln.all_reduce"(%x) : (tensor<?x64xf32>) -> tensor<?x32xf32>
  return
}
