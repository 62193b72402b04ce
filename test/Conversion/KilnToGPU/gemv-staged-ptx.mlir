// RUN: kiln-opt %s --split-input-file --kiln-lower-to-cuda | FileCheck %s

// The decode GEMV stages its activations and weight rows in shared memory
// (16-byte aligned arrays), loading both with 128-bit loads (ld.global.v4:
// the Q4_0 rows of 2048 x 256 are 144 bytes; the activations, then each of
// the warp's two rows) before the first shared store,
// waits at a block barrier, then reads the activations back with 128-bit
// shared loads; 2048 rows take two rows per warp (_r2). The attention block's
// warps merge their partial softmaxes through shared memory after a barrier.
// CHECK: gpu.binary @kiln_kernels
// CHECK-SAME: .target sm_90a
// CHECK-SAME: .visible .entry kiln_gemv_q4_0_2048x256_r2(
// CHECK-SAME: .shared .align 16 .b8
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: ld.global.v4.b32
// CHECK-SAME: st.shared.v4.b32
// CHECK-SAME: bar.sync \090;
// CHECK-SAME: ld.shared.v4.b32
// CHECK-SAME: fma.rn.f32
// CHECK-SAME: shfl.sync.bfly.b32
// CHECK-SAME: .visible .entry kiln_gemv_q4_0_2048x256_t4(
// CHECK: gpu.binary @kiln_kernels
// CHECK-SAME: .visible .entry kiln_attention_h4_kv2_d64_L1_c64_l0_w0_causal_s0p125_split16(
// CHECK-SAME: .shared .align 16 .b8
// CHECK-SAME: bar.sync \090;
// CHECK-SAME: ld.shared.b32
func.func @forward(%x: tensor<?x256xf32>) -> tensor<?x2048xf32> attributes {kiln.max_tokens = 4} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 294912> -> !kiln.weight<2048x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !kiln.weight<2048x256x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<?x2048xf32>
  return %y : tensor<?x2048xf32>
}

// -----

func.func @forward(%q: tensor<?x256xf32>, %k: tensor<?x128xf32>, %v: tensor<?x128xf32>, %cache: !kiln.kv_cache<1x64x2x64xf32>, %pos: index) -> tensor<?x256xf32> attributes {kiln.max_tokens = 4} {
  %a = kiln.attention %q, %k, %v, %cache[%pos] {layer = 0 : i64, num_heads = 4 : i64, scale = 1.250000e-01 : f32} : tensor<?x256xf32>, tensor<?x128xf32>, tensor<?x128xf32>, !kiln.kv_cache<1x64x2x64xf32> -> tensor<?x256xf32>
  return %a : tensor<?x256xf32>
}
