// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda=activation-bits=0 | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda=activation-bits=0 | FileCheck %s --check-prefix=CVT
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda=activation-bits=0 | FileCheck %s --check-prefix=FORMATS
// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda=activation-bits=0 | FileCheck %s --check-prefix=SEGMENTS

// The decode GEMV over #kiln_gpu.split weights stages only its activations
// in shared memory (128-bit loads and stores, a barrier), then reads the
// codes straight from global memory with one 128-bit load per lane and
// chunk: 2048 x 4096 Q4_0 has 2048 bytes of codes a row and two rows per
// warp (_r2), and each step takes two chunks of each row (a warp's lanes 512
// bytes apart), all four loads before the first multiply, each with the
// chunk's 16-bit scale from the headers. Codes become floats through the
// 2^23 exponent (prmt.b32 puts a code byte under 0x4B000000 = 1258291200,
// then an exact subtraction), not cvt.rn.f32.s32.
// CHECK: gpu.binary @kiln_kernels
// CHECK-SAME: .visible .entry kiln_gemv_q4_0_split_2048x4096_r2(
// CHECK-SAME: .shared .align 16 .b8
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: st.shared.v4.b32
// CHECK-SAME: bar.sync \090;
// CHECK-SAME: ld.global.v4.b32 \09{{{[^}]*}}}, [[[ROW:%rd[0-9]+]]];
// CHECK-SAME: ld.global.b16
// CHECK-SAME: prmt.b32 \09{{%r[0-9]+}}, {{%r[0-9]+}}, 1258291200, 0x7440U;
// CHECK-SAME: ld.global.v4.b32 \09{{{[^}]*}}}, [[[ROW2:%rd[0-9]+]]];
// CHECK-SAME: ld.global.v4.b32 \09{{{[^}]*}}}, [[[ROW]]+512];
// CHECK-SAME: ld.global.v4.b32 \09{{{[^}]*}}}, [[[ROW2]]+512];
// CHECK-SAME: ld.shared.v4.b32
// CHECK-SAME: fma.rn.f32
// CHECK-SAME: shfl.sync.bfly.b32
// CHECK-SAME: .visible .entry kiln_gemv_q4_0_split_2048x4096_t4(
// CVT: .visible .entry kiln_gemv_q4_0_split_2048x4096_r2(
// CVT-NOT: cvt.rn.f32.s32
// CVT-SAME: .visible .entry kiln_gemv_q4_0_split_2048x4096_t4(
func.func @forward(%x: tensor<?x4096xf32>) -> tensor<?x2048xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4718592> -> !kiln.weight<2048x4096x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %y = kiln.linear %x, %w : tensor<?x4096xf32>, !kiln.weight<2048x4096x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x2048xf32>
  return %y : tensor<?x2048xf32>
}

// -----

// Q8_0's codes are two planes (a row's first 16 bytes of every block, then
// the last 16): sign bits flipped four bytes at a time (xor with 0x80808080
// = -2139062144), then one prmt per code; 64 rows keep one row per warp.
// Q4_1's header (d and m) is one 32-bit load.
// FORMATS: .visible .entry kiln_gemv_q8_0_split_64x4096(
// FORMATS-SAME: ld.global.v4.b32
// FORMATS-SAME: xor.b32 \09{{%r[0-9]+}}, {{%r[0-9]+}}, -2139062144;
// FORMATS-SAME: prmt.b32
// FORMATS-SAME: ld.global.b16
// FORMATS-NOT: cvt.rn.f32.s32
// FORMATS-SAME: .visible .entry kiln_gemv_q8_0_split_64x4096_t4(
// FORMATS: .visible .entry kiln_gemv_q4_1_split_64x4096(
// FORMATS-SAME: ld.global.v4.b32
// FORMATS-SAME: ld.global.b32
// FORMATS-SAME: prmt.b32
// FORMATS-NOT: cvt.rn.f32.s32
// FORMATS-SAME: .visible .entry kiln_gemv_q4_1_split_64x4096_t4(
func.func @forward(%x: tensor<?x4096xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>) attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 278528> -> !kiln.weight<64x4096x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %y = kiln.linear %x, %w : tensor<?x4096xf32>, !kiln.weight<64x4096x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x64xf32>
  %v = kiln.weight #kiln.external<"w.bin", offset = 278528, size = 163840> -> !kiln.weight<64x4096x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %z = kiln.linear %x, %v : tensor<?x4096xf32>, !kiln.weight<64x4096x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x64xf32>
  return %y, %z : tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// K = 14336 (an 8B model's down projection): 57 KB of activations do not fit
// in the 48 KB of static shared memory, so the kernel (_seg2) stages them in
// two segments of K (256 and 192 chunks: 16 and 12 128-bit copies a thread),
// with a barrier before and after restaging; the codes as above.
// CHECK: .visible .entry kiln_gemv_q4_0_split_4096x14336_r2_seg2(
// CHECK-SAME: .shared .align 16 .b8 {{.*}}[32768]
// CHECK-COUNT-3: bar.sync
// CHECK-NOT: bar.sync
// CHECK-SAME: .visible .entry kiln_gemv_q4_0_split_4096x14336_t4(
// SEGMENTS: .visible .entry kiln_gemv_q4_0_split_4096x14336_r2_seg2(
// SEGMENTS-COUNT-16: st.shared.v4.b32
// SEGMENTS: bar.sync
// SEGMENTS: ld.global.v4.b32
// SEGMENTS: prmt.b32
// SEGMENTS: fma.rn.f32
// SEGMENTS: bar.sync
// SEGMENTS-COUNT-12: st.shared.v4.b32
// SEGMENTS: bar.sync
// SEGMENTS: shfl.sync.bfly.b32
// SEGMENTS: .visible .entry kiln_gemv_q4_0_split_4096x14336_t4(
func.func @forward(%x: tensor<?x14336xf32>) -> tensor<?x4096xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 33030144> -> !kiln.weight<4096x14336x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>>
  %y = kiln.linear %x, %w : tensor<?x14336xf32>, !kiln.weight<4096x14336x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf, target_layout = #kiln_gpu.split>> -> tensor<?x4096xf32>
  return %y : tensor<?x4096xf32>
}
