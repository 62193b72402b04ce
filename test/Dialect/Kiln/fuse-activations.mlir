// RUN: kiln-opt %s --split-input-file --kiln-fuse | FileCheck %s
// RUN: kiln-opt %s --split-input-file --kiln-fuse=activation-bits=0 | FileCheck %s --check-prefix=FLOAT
// RUN: kiln-opt %s --split-input-file --kiln-fuse=activation-bits=5 | FileCheck %s --check-prefix=FIVE
// RUN: not kiln-opt %s --split-input-file --kiln-fuse=activation-bits=9 2>&1 | FileCheck %s --check-prefix=BITS
// RUN: not kiln-opt %s --split-input-file --kiln-fuse=activation-bits=1 2>&1 | FileCheck %s --check-prefix=BITS

// kiln-fuse's quantized activations (activation-bits defaults to 8, the CPU
// pipeline's int8 activations): the layers over weights with one scale per
// 32 values take them, and the op whose result they read quantizes it.
// BITS: kiln-fuse: activation-bits must be 0 or in [2, 8], got
// FLOAT-LABEL: func.func @block
// FLOAT-NOT: activation_bits
// FLOAT-NOT: kiln.quantize_output
// FLOAT-LABEL: func.func @float_layers
// FIVE-LABEL: func.func @block
// FIVE: kiln.rms_norm {{.*}}kiln.quantize_output = 5 : i64
// FIVE: kiln.linear {{.*}} {activation_bits = 5 : i64}

!q4_0 = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
!q8_0 = !kiln.weight<64x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
!f32 = !kiln.weight<64x64xf32>

// A pre-norm MLP: the norm quantizes for gate and up (one copy for both),
// the swiglu for the down projection.
// CHECK-LABEL: func.func @block
// CHECK: kiln.rms_norm {{.*}}kiln.quantize_output = 8 : i64
// CHECK: kiln.linear {{.*}} {activation_bits = 8 : i64} : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 4
// CHECK: kiln.linear {{.*}} {activation_bits = 8 : i64} : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 8
// CHECK: kiln.swiglu {{.*}}kiln.quantize_output = 8 : i64
// CHECK: kiln.linear {{.*}} {activation_bits = 8 : i64}
func.func @block(%x: tensor<?x64xf32>, %n: !kiln.weight<64xf32>, %wg: !q4_0, %wu: !q8_0, %wd: !q4_0) -> tensor<?x64xf32> {
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %g = kiln.linear %h, %wg : tensor<?x64xf32>, !q4_0 -> tensor<?x64xf32>
  %u = kiln.linear %h, %wu : tensor<?x64xf32>, !q8_0 -> tensor<?x64xf32>
  %s = kiln.swiglu %g, %u : tensor<?x64xf32>
  %d = kiln.linear %s, %wd : tensor<?x64xf32>, !q4_0 -> tensor<?x64xf32>
  return %d : tensor<?x64xf32>
}

// -----

// Float weights, K-quants in ggml's own layout (scales per 16 or under a
// super-block) and packed groups not a multiple of 32 keep float
// activations, and so does the norm that feeds only them.
// CHECK-LABEL: func.func @float_layers
// CHECK-NOT: activation_bits
// CHECK-NOT: kiln.quantize_output
// CHECK: return
!q4_k = !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>
!p16 = !kiln.weight<64x256x#kiln.quant<bits = 4, group = 16, scale = f16>>
func.func @float_layers(%x: tensor<?x256xf32>, %n: !kiln.weight<256xf32>, %wk: !q4_k, %wp: !p16, %wf: !kiln.weight<64x256xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32} : tensor<?x256xf32>, !kiln.weight<256xf32> -> tensor<?x256xf32>
  %a = kiln.linear %h, %wk : tensor<?x256xf32>, !q4_k -> tensor<?x64xf32>
  %b = kiln.linear %h, %wp : tensor<?x256xf32>, !p16 -> tensor<?x64xf32>
  %c = kiln.linear %h, %wf : tensor<?x256xf32>, !kiln.weight<64x256xf32> -> tensor<?x64xf32>
  return %a, %b, %c : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// Packed groups of 64 take them; a producer whose result is also returned
// still quantizes (the float result is written too).
// CHECK-LABEL: func.func @packed
// CHECK: kiln.mul {{.*}}kiln.quantize_output = 8 : i64
// CHECK: kiln.linear {{.*}} {activation_bits = 8 : i64}
!p64 = !kiln.weight<64x128x#kiln.quant<bits = 5, group = 64, scale = f16>>
func.func @packed(%x: tensor<?x128xf32>, %y: tensor<?x128xf32>, %w: !p64) -> (tensor<?x128xf32>, tensor<?x64xf32>) {
  %m = kiln.mul %x, %y : tensor<?x128xf32>
  %l = kiln.linear %m, %w : tensor<?x128xf32>, !p64 -> tensor<?x64xf32>
  return %m, %l : tensor<?x128xf32>, tensor<?x64xf32>
}

// -----

// A width already in the IR is kept (kiln-fuse is idempotent), and the
// producer quantizes to the width its readers share.
!q4 = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
// CHECK-LABEL: func.func @kept_width
// CHECK: kiln.rms_norm {{.*}}kiln.quantize_output = 5 : i64
// CHECK: kiln.linear {{.*}} {activation_bits = 5 : i64}
// CHECK: kiln.linear {{.*}} {activation_bits = 5 : i64}
func.func @kept_width(%x: tensor<?x64xf32>, %n: !kiln.weight<64xf32>, %a: !q4, %c: !q4) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %y = kiln.linear %h, %a {activation_bits = 5 : i64} : tensor<?x64xf32>, !q4 -> tensor<?x64xf32>
  %z = kiln.linear %h, %c {activation_bits = 5 : i64} : tensor<?x64xf32>, !q4 -> tensor<?x64xf32>
  return %y, %z : tensor<?x64xf32>, tensor<?x64xf32>
}

// -----

// Readers of two widths: the producer leaves quantizing to them.
!q4 = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
// CHECK-LABEL: func.func @mixed_widths
// CHECK-NOT: kiln.quantize_output
// CHECK: return
func.func @mixed_widths(%x: tensor<?x64xf32>, %n: !kiln.weight<64xf32>, %a: !q4, %c: !q4) -> (tensor<?x64xf32>, tensor<?x64xf32>) {
  %h = kiln.rms_norm %x, %n {epsilon = 1.0e-5 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %y = kiln.linear %h, %a {activation_bits = 5 : i64} : tensor<?x64xf32>, !q4 -> tensor<?x64xf32>
  %z = kiln.linear %h, %c : tensor<?x64xf32>, !q4 -> tensor<?x64xf32>
  return %y, %z : tensor<?x64xf32>, tensor<?x64xf32>
}
