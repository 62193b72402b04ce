// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=8" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda | FileCheck %s --check-prefix=PTX
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda=activation-bits=0 | FileCheck %s --check-prefix=F32

// With int8 activations (kiln-fuse activation-bits=8, kiln-lower-to-cuda's
// and kiln-compile's default), decode (T = 1) over the split layout runs
// kiln_quantize_a8_<K> into the step's workspace (K codes, then a scale, a
// code sum and a q8_1 scaled sum per 32 values, 16-byte aligned arrays:
// 512 + 3 * 64 = 704 bytes here), then the _q8 GEMV over it. The second
// layer over the same input (like K after Q) quantizes nothing; a layer over
// another input quantizes that one. Prefill keeps the f32 kernels.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_quantize_a8_512", "kiln_gemv_q4_0_split_256x512_q8", "kiln_gemv_q4_0_split_256x512_t4", "kiln_gemv_q8_0_split_64x512_q8", "kiln_gemv_q8_0_split_64x512_t4", "kiln_quantize_a8_256", "kiln_gemv_q4_1_split_64x256_q8", "kiln_gemv_q4_1_split_64x256_t4"], kiln.scratch_bytes = 704
// CHECK: scf.if
// CHECK: memref.view %{{.*}} : memref<?xi8> to memref<704xi8>
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c0_i32,
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c1_i32{{[_0-9]*}},
// CHECK: } else {
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c2_i32,
// CHECK: scf.if
// CHECK-NOT: %c0_i32,
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c3_i32,
// CHECK: } else {
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c4_i32,
// CHECK: scf.if
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c5_i32,
// CHECK: llvm.call %{{.*}}(%{{.*}}, %c6_i32,

// The quantization: eight lanes a block of 32 values, their amax through 3
// xor shuffles, codes = x * (127 / amax) (an IEEE division, as the CPU's)
// clamped to 127, rounded half to even by adding 1.5 * 2^23 (0f4B400000),
// their low bytes packed by prmt, the codes' sum by dp4a with 0x01010101.
// PTX: .visible .entry kiln_quantize_a8_512(
// PTX-COUNT-3: shfl.sync.bfly.b32
// PTX: div.rn.f32
// PTX: min.NaN.f32{{[^;]*}} 0f42FE0000;
// PTX: add.rn.f32{{[^;]*}} 0f4B400000;
// PTX: prmt.b32{{[^;]*}} 0x40U;
// PTX: prmt.b32{{[^;]*}} 0x5410U;
// PTX: mov.b32{{[^;]*}}, 16843009;
// PTX: dp4a.s32.s32
// The GEMV stages the quantized activations (704 bytes: 44 128-bit copies)
// and multiplies each chunk's 16 bytes of Q4_0 codes with dp4a: 4 low and 4
// high nibble words (and 0x0F0F0F0F = 252645135) times the activation
// codes, unsigned times signed, then the offset of 8 times the codes' sum.
// PTX: .visible .entry kiln_gemv_q4_0_split_256x512_q8(
// PTX-SAME: .shared .align 16 .b8{{[^;]*}}[704]
// PTX-SAME: bar.sync
// PTX-SAME: ld.global.v4.b32
// PTX-SAME: ld.shared.v4.b32
// PTX-SAME: and.b32{{[^;]*}} 252645135;
// PTX-SAME: dp4a.u32.s32
// PTX-SAME: shl.b32{{[^;]*}}, 3;
// PTX-SAME: sub.s32
// PTX-SAME: cvt.rn.f32.s32
// PTX-SAME: shfl.sync.bfly.b32
// Q8_0: signed bytes times signed, two planes, no offset.
// PTX: .visible .entry kiln_gemv_q8_0_split_64x512_q8(
// PTX-SAME: dp4a.s32.s32
// PTX-NOT: sub.s32
// PTX-SAME: .visible .entry kiln_gemv_q8_0_split_64x512_t4(
// Q4_1: its min times the activations' q8_1 sum (a 32-bit header load).
// PTX: .visible .entry kiln_gemv_q4_1_split_64x256_q8(
// PTX-SAME: ld.global.b32
// PTX-SAME: dp4a.u32.s32
// PTX-SAME: fma.rn.f32
// Without quantized activations, none of this.
// F32-NOT: kiln_quantize
// F32-NOT: dp4a
func.func @forward(%x: tensor<?x512xf32>, %h: tensor<?x256xf32>) -> (tensor<?x256xf32>, tensor<?x64xf32>, tensor<?x64xf32>) attributes {kiln.max_tokens = 4} {
  %wq = kiln.weight #kiln.external<"w.bin", offset = 0, size = 73728> -> !kiln.weight<256x512x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %q = kiln.linear %x, %wq : tensor<?x512xf32>, !kiln.weight<256x512x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x256xf32>
  %wk = kiln.weight #kiln.external<"w.bin", offset = 73728, size = 34816> -> !kiln.weight<64x512x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %k = kiln.linear %x, %wk : tensor<?x512xf32>, !kiln.weight<64x512x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x64xf32>
  %wo = kiln.weight #kiln.external<"w.bin", offset = 108544, size = 10240> -> !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %o = kiln.linear %h, %wo : tensor<?x256xf32>, !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x64xf32>
  return %q, %k, %o : tensor<?x256xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// Weights the int8 GEMV does not take (GGUF blocks where they lie, not
// split) keep the f32 kernel whatever kiln-fuse asked.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q4_0_64x64", "kiln_gemv_q4_0_64x64_t4"]
// PTX: .visible .entry kiln_gemv_q4_0_64x64(
// PTX-NOT: kiln_quantize
func.func @forward(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2304> -> !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  %y = kiln.linear %x, %w {activation_bits = 8 : i64} : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
