// RUN: kiln-opt %s --kiln-fuse=activation-bits=5 --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v4 --canonicalize | FileCheck %s --check-prefixes=CHECK,A5 -D\$B=5
// RUN: kiln-opt %s --kiln-fuse=activation-bits=2 --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v4 --canonicalize | FileCheck %s --check-prefixes=CHECK,A2 -D\$B=2
// RUN: kiln-opt %s --kiln-fuse=activation-bits=8 --kiln-plan-memory --convert-kiln-to-cpu=cpu=x86-64-v4 --canonicalize | FileCheck %s --check-prefixes=CHECK,A8 -D\$B=8

// Activations of any width 2-8 run through the same integer kernels: only
// the quantizer changes, in the linear's own quantize kernel and in the
// norm / elementwise epilogues kiln-fuse marks. A b-bit code is an int8 in
// [-(2^(b-1)-1), 2^(b-1)-1] with the scale max|x| / (2^(b-1)-1).

!q4_0 = !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>

// CHECK-LABEL: func.func @norm_then_linear(
// CHECK: call @kiln_rms_norm_f32_64_eps{{.*}}_q[[$B]](
// CHECK-NOT: call @kiln_quantize
// CHECK: call @kiln_linear_q8_x86_64_v4_q4_0_64x64(
func.func @norm_then_linear(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %g = kiln.weight #kiln.external<"w.bin", offset = 2304, size = 256> -> !kiln.weight<64xf32>
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2304> -> !q4_0
  %n = kiln.rms_norm %x, %g {epsilon = 1.0e-6 : f32} : tensor<?x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %y = kiln.linear %n, %w : tensor<?x64xf32>, !q4_0 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// CHECK-LABEL: func.func @mul_then_linear(
// CHECK: call @kiln_mul_64_q[[$B]](
// CHECK-NOT: call @kiln_quantize
// CHECK: call @kiln_linear_q8_x86_64_v4_q4_0_64x64(
func.func @mul_then_linear(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2304> -> !q4_0
  %m = kiln.mul %a, %b : tensor<?x64xf32>
  %y = kiln.linear %m, %w : tensor<?x64xf32>, !q4_0 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// An argument has no producer: the linear quantizes it itself.
// CHECK-LABEL: func.func @linear(
// CHECK: call @kiln_quantize_q[[$B]]_64(
// CHECK: call @kiln_linear_q8_x86_64_v4_q4_0_64x64(
func.func @linear(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2304> -> !q4_0
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !q4_0 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// Each quantizer clamps its rounded codes to +-(2^(b-1)-1) and takes the
// scale as max|x| over that bound.
// CHECK: func.func private @kiln_rms_norm_f32_64_eps{{.*}}_q[[$B]](
// A5-DAG: %[[LO:.*]] = arith.constant dense<-1.500000e+01> : vector<16xf32>
// A5-DAG: %[[HI:.*]] = arith.constant dense<1.500000e+01> : vector<16xf32>
// A2-DAG: %[[LO:.*]] = arith.constant dense<-1.000000e+00> : vector<16xf32>
// A2-DAG: %[[HI:.*]] = arith.constant dense<1.000000e+00> : vector<16xf32>
// A8-DAG: %[[LO:.*]] = arith.constant dense<-1.270000e+02> : vector<16xf32>
// A8-DAG: %[[HI:.*]] = arith.constant dense<1.270000e+02> : vector<16xf32>
// CHECK: %[[R:.*]] = math.roundeven %{{.*}} : vector<16xf32>
// CHECK: %[[C:.*]] = arith.maximumf %[[R]], %[[LO]] : vector<16xf32>
// CHECK: arith.minimumf %[[C]], %[[HI]] : vector<16xf32>

// CHECK: func.func private @kiln_mul_64_q[[$B]](
// A5-DAG: arith.constant dense<1.500000e+01> : vector<16xf32>
// A2-DAG: arith.constant dense<1.000000e+00> : vector<16xf32>
// A8-DAG: arith.constant dense<1.270000e+02> : vector<16xf32>
// CHECK: arith.minimumf

// CHECK: func.func private @kiln_quantize_q[[$B]]_64(
// A5-DAG: %[[LO:.*]] = arith.constant dense<-1.500000e+01> : vector<16xf32>
// A5-DAG: %[[HI:.*]] = arith.constant dense<1.500000e+01> : vector<16xf32>
// A5-DAG: %[[M:.*]] = arith.constant 1.500000e+01 : f32
// A2-DAG: %[[LO:.*]] = arith.constant dense<-1.000000e+00> : vector<16xf32>
// A2-DAG: %[[HI:.*]] = arith.constant dense<1.000000e+00> : vector<16xf32>
// A2-DAG: %[[M:.*]] = arith.constant 1.000000e+00 : f32
// A8-DAG: %[[LO:.*]] = arith.constant dense<-1.270000e+02> : vector<16xf32>
// A8-DAG: %[[HI:.*]] = arith.constant dense<1.270000e+02> : vector<16xf32>
// A8-DAG: %[[M:.*]] = arith.constant 1.270000e+02 : f32
// CHECK: %[[AMAX:.*]] = vector.reduction <maximumf>
// (At 2 bits the scale max|x| / 1 folds away.)
// A5: arith.divf %[[AMAX]], %[[M]] : f32
// A8: arith.divf %[[AMAX]], %[[M]] : f32
// CHECK: arith.divf %[[M]], %[[AMAX]] : f32
// CHECK: %[[R:.*]] = math.roundeven %{{.*}} : vector<16xf32>
// CHECK: %[[C:.*]] = arith.maximumf %[[R]], %[[LO]] : vector<16xf32>
// CHECK: arith.minimumf %[[C]], %[[HI]] : vector<16xf32>
