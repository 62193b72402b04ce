// RUN: kiln-opt %s --split-input-file --kiln-fuse --kiln-plan-memory --convert-kiln-to-cpu | FileCheck %s --implicit-check-not=math.exp --implicit-check-not=math.tanh --implicit-check-not=math.erf

// The elementwise and softmax kernels' emitted IR: 16 lanes at a time over
// the flattened [tokens, dim] array; exp, tanh and erf become polynomials
// (none of the math ops may remain).

// silu(x) = x / (1 + exp(-x)); exp as a polynomial times 2^n.
// CHECK-LABEL: func.func private @kiln_silu_32(
// CHECK-DAG: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : vector<16xf32>
// CHECK: %[[X:.*]] = vector.load %arg0[%{{.*}}, %{{.*}}] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
// CHECK: arith.negf %[[X]] : vector<16xf32>
// CHECK: math.floor %{{.*}} : vector<16xf32>
// CHECK: %[[TWON:.*]] = arith.bitcast %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: %[[E:.*]] = arith.mulf %{{.*}}, %[[TWON]] : vector<16xf32>
// CHECK: %[[DEN:.*]] = arith.addf %[[E]], %[[ONE]] : vector<16xf32>
// CHECK: %[[Y:.*]] = arith.divf %[[X]], %[[DEN]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg1[%{{.*}}, %{{.*}}] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
func.func @silu(%a: tensor<?x32xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.silu %a : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// gelu (tanh form): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// CHECK-LABEL: func.func private @kiln_gelu_tanh_32(
// CHECK-DAG: %[[C:.*]] = arith.constant dense<4.471500e-02> : vector<16xf32>
// CHECK-DAG: %[[K:.*]] = arith.constant dense<0.797884583> : vector<16xf32>
// CHECK-DAG: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : vector<16xf32>
// CHECK-DAG: %[[HALF:.*]] = arith.constant dense<5.000000e-01> : vector<16xf32>
// CHECK: %[[X:.*]] = vector.load %arg0{{.*}} vector<16xf32>
// CHECK: %[[X2:.*]] = arith.mulf %[[X]], %[[X]] : vector<16xf32>
// CHECK: %[[X3:.*]] = arith.mulf %[[X2]], %[[X]] : vector<16xf32>
// CHECK: %[[IN:.*]] = vector.fma %[[C]], %[[X3]], %[[X]] : vector<16xf32>
// CHECK: %[[ARG:.*]] = arith.mulf %[[IN]], %[[K]] : vector<16xf32>
// CHECK: math.absf %[[ARG]] : vector<16xf32>
// CHECK: %[[T:.*]] = arith.select %{{.*}}, %{{.*}}, %{{.*}} : vector<16xi1>, vector<16xf32>
// CHECK: %[[HX:.*]] = arith.mulf %[[X]], %[[HALF]] : vector<16xf32>
// CHECK: %[[OPT:.*]] = arith.addf %[[T]], %[[ONE]] : vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %[[HX]], %[[OPT]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg1
func.func @gelu_tanh(%a: tensor<?x32xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.gelu %a : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// gelu (erf form): 0.5 x (1 + erf(x / sqrt(2))).
// CHECK-LABEL: func.func private @kiln_gelu_erf_32(
// CHECK-DAG: %[[R2:.*]] = arith.constant dense<0.707106769> : vector<16xf32>
// CHECK-DAG: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : vector<16xf32>
// CHECK-DAG: %[[HALF:.*]] = arith.constant dense<5.000000e-01> : vector<16xf32>
// CHECK: %[[X:.*]] = vector.load %arg0{{.*}} vector<16xf32>
// CHECK: arith.mulf %[[X]], %[[R2]] : vector<16xf32>
// CHECK: math.fma
// CHECK: %[[HX:.*]] = arith.mulf %[[X]], %[[HALF]] : vector<16xf32>
// CHECK: %[[OPE:.*]] = arith.addf %{{.*}}, %[[ONE]] : vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %[[HX]], %[[OPE]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg1
func.func @gelu_erf(%a: tensor<?x32xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.gelu %a {approximate = #kiln.gelu_approx<erf>} : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// swiglu(g, u) = silu(g) * u; geglu(g, u) = gelu(g) * u.
// CHECK-LABEL: func.func private @kiln_swiglu_32(
// CHECK: %[[G:.*]] = vector.load %arg0{{.*}} vector<16xf32>
// CHECK: arith.negf %[[G]] : vector<16xf32>
// CHECK: %[[S:.*]] = arith.divf %[[G]], %{{.*}} : vector<16xf32>
// CHECK: %[[U:.*]] = vector.load %arg1{{.*}} vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %[[S]], %[[U]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg2
// CHECK-LABEL: func.func private @kiln_geglu_tanh_32(
// CHECK: %[[G:.*]] = vector.load %arg0{{.*}} vector<16xf32>
// CHECK: math.absf
// CHECK: %[[HX:.*]] = arith.mulf %[[G]], %{{.*}} : vector<16xf32>
// CHECK: %[[GE:.*]] = arith.mulf %[[HX]], %{{.*}} : vector<16xf32>
// CHECK: %[[U:.*]] = vector.load %arg1{{.*}} vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %[[GE]], %[[U]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg2
// CHECK-LABEL: func.func private @kiln_geglu_erf_32(
// CHECK: vector.load %arg0{{.*}} vector<16xf32>
// CHECK: arith.mulf %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK: %[[U:.*]] = vector.load %arg1{{.*}} vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %{{.*}}, %[[U]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg2
func.func @gated(%g: tensor<?x32xf32>, %u: tensor<?x32xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>) attributes {kiln.max_tokens = 8} {
  %s = kiln.swiglu %g, %u : tensor<?x32xf32>
  %t = kiln.geglu %g, %u : tensor<?x32xf32>
  %e = kiln.geglu %g, %u {approximate = #kiln.gelu_approx<erf>} : tensor<?x32xf32>
  return %s, %t, %e : tensor<?x32xf32>, tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

// CHECK-LABEL: func.func private @kiln_add_32(
// CHECK: %[[A:.*]] = vector.load %arg0[%[[T:.*]], %[[COL:.*]]] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
// CHECK: %[[B:.*]] = vector.load %arg1[%[[T]], %[[COL]]] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
// CHECK: %[[Y:.*]] = arith.addf %[[A]], %[[B]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg2[%[[T]], %[[COL]]] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
// CHECK-LABEL: func.func private @kiln_mul_32(
// CHECK: %[[A:.*]] = vector.load %arg0[%[[T:.*]], %[[COL:.*]]] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
// CHECK: %[[B:.*]] = vector.load %arg1[%[[T]], %[[COL]]] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %[[A]], %[[B]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg2[%[[T]], %[[COL]]] : memref<?x32xf32, strided<[32, 1], offset: ?>>, vector<16xf32>
func.func @add_mul(%a: tensor<?x32xf32>, %b: tensor<?x32xf32>) -> (tensor<?x32xf32>, tensor<?x32xf32>) attributes {kiln.max_tokens = 8} {
  %s = kiln.add %a, %b : tensor<?x32xf32>
  %p = kiln.mul %a, %b : tensor<?x32xf32>
  return %s, %p : tensor<?x32xf32>, tensor<?x32xf32>
}

// -----

// softmax per row: a vector max, exp(x - max) stored and summed, then
// scaled by 1 / sum.
// CHECK-LABEL: func.func private @kiln_softmax_32(
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[MAXV:.*]] = scf.for {{.*}} iter_args(%[[M:.*]] = %{{.*}}) -> (vector<16xf32>)
// CHECK: %[[X:.*]] = vector.load %arg0[%[[T]], %{{.*}}] {{.*}} vector<16xf32>
// CHECK: arith.maximumf %[[M]], %[[X]] : vector<16xf32>
// CHECK: %[[MAX:.*]] = vector.reduction <maximumf>, %[[MAXV]] : vector<16xf32> into f32
// CHECK: %[[MAXB:.*]] = vector.broadcast %[[MAX]] : f32 to vector<16xf32>
// CHECK: %[[SUMV:.*]] = scf.for {{.*}} iter_args(%[[S:.*]] = %{{.*}}) -> (vector<16xf32>)
// CHECK: arith.subf %{{.*}}, %[[MAXB]] : vector<16xf32>
// CHECK: math.floor
// CHECK: %[[TWON:.*]] = arith.bitcast %{{.*}} : vector<16xi32> to vector<16xf32>
// CHECK: %[[E:.*]] = arith.mulf %{{.*}}, %[[TWON]] : vector<16xf32>
// CHECK: vector.store %[[E]], %arg1[%[[T]], %{{.*}}]
// CHECK: arith.addf %[[S]], %[[E]] : vector<16xf32>
// CHECK: %[[SUM:.*]] = vector.reduction <add>, %[[SUMV]] : vector<16xf32> into f32
// CHECK: %[[INV:.*]] = arith.divf %{{.*}}, %[[SUM]] : f32
// CHECK: %[[INVV:.*]] = vector.broadcast %[[INV]] : f32 to vector<16xf32>
// CHECK: scf.for
// CHECK: %[[P:.*]] = vector.load %arg1[%[[T]], %{{.*}}] {{.*}} vector<16xf32>
// CHECK: %[[Y:.*]] = arith.mulf %[[P]], %[[INVV]] : vector<16xf32>
// CHECK: vector.store %[[Y]], %arg1[%[[T]], %{{.*}}]
func.func @softmax(%a: tensor<?x32xf32>) -> tensor<?x32xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.softmax %a : tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}

// -----

// A gated op read by an int8 linear layer: work items are whole 32-value
// blocks (two 16-lane halves), each quantized right after it is written.
!q8_0 = !kiln.weight<64x32x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
// CHECK-LABEL: func.func @swiglu_q8(
// CHECK: call @kiln_swiglu_32_q8(
// CHECK-NOT: call @kiln_quantize_q8
// CHECK: call @kiln_linear_q8_generic_q8_0_32x64(
// CHECK-LABEL: func.func private @kiln_swiglu_32_q8(
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C16:.*]] = arith.constant 16 : index
// CHECK: scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[U0:.*]] = vector.load %arg1[%[[T]], %[[C0]]] {{.*}} vector<16xf32>
// CHECK: %[[Y0:.*]] = arith.mulf %{{.*}}, %[[U0]] : vector<16xf32>
// CHECK: vector.store %[[Y0]], %arg2[%[[T]], %[[C0]]]
// CHECK: %[[U1:.*]] = vector.load %arg1[%[[T]], %[[C16]]] {{.*}} vector<16xf32>
// CHECK: %[[Y1:.*]] = arith.mulf %{{.*}}, %[[U1]] : vector<16xf32>
// CHECK: vector.store %[[Y1]], %arg2[%[[T]], %[[C16]]]
// CHECK: vector.load %arg2[%[[T]], %[[C0]]]
// CHECK: vector.load %arg2[%[[T]], %[[C16]]]
// CHECK: vector.reduction <maximumf>
// CHECK: math.roundeven %{{.*}} : vector<16xf32>
// CHECK: vector.store %{{.*}}, %arg3[%{{.*}}] : memref<?xi8>, vector<32xi8>
func.func @swiglu_q8(%g: tensor<?x32xf32>, %u: tensor<?x32xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2176> -> !q8_0
  %s = kiln.swiglu %g, %u : tensor<?x32xf32>
  %y = kiln.linear %s, %w : tensor<?x32xf32>, !q8_0 -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
