// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s --implicit-check-not=math.exp --implicit-check-not=math.tanh --implicit-check-not=math.erf

// One thread per value: grid ceil(T * width / 256) blocks of 256, the count
// passed as an index argument. exp, tanh and erf become polynomials.
// CHECK-LABEL: func.func @swiglu(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_swiglu"]
// CHECK: %[[T:.*]] = memref.dim
// CHECK: %[[COUNT:.*]] = arith.muli %[[T]], %c64 : index
// CHECK: arith.addi %[[COUNT]], %c255 : index
// CHECK: arith.divui %{{.*}}, %c256 : index
// CHECK: gpu.func @kiln_swiglu(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %[[N:.*]]: index) kernel
// CHECK: %[[I:.*]] = arith.addi
// CHECK: arith.cmpi ult, %[[I]], %[[N]] : index
// CHECK: arith.divf
// CHECK: arith.mulf
// CHECK: memref.store
func.func @swiglu(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %y = kiln.swiglu %a, %b : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// Each kind is one kernel, shared by every op of that kind whatever its
// width; the result of a slice of whole rows is copied into the output.
// CHECK-LABEL: func.func @kinds(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gelu_tanh", "kiln_geglu_erf", "kiln_mul", "kiln_silu", "kiln_add", "kiln_copy"]
// CHECK: memref.subview %{{.*}}[%{{.*}}, 0] [%{{.*}}, 64] [1, 1]
// CHECK: gpu.func @kiln_gelu_tanh(
// CHECK: gpu.func @kiln_geglu_erf(
// CHECK: gpu.func @kiln_mul(
// CHECK: gpu.func @kiln_silu(
// CHECK: gpu.func @kiln_add(
// CHECK: gpu.func @kiln_copy(
func.func @kinds(%a: tensor<?x64xf32>, %b: tensor<?x64xf32>, %r: index) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %g = kiln.gelu %a : tensor<?x64xf32>
  %e = kiln.geglu %g, %b {approximate = #kiln.gelu_approx<erf>} : tensor<?x64xf32>
  %m = kiln.mul %e, %a : tensor<?x64xf32>
  %s = kiln.silu %m : tensor<?x64xf32>
  %t = kiln.add %s, %b : tensor<?x64xf32>
  %c0 = arith.constant 0 : index
  %n = tensor.dim %t, %c0 : tensor<?x64xf32>
  %start = arith.subi %n, %r : index
  %y = tensor.extract_slice %t[%start, 0] [%r, 64] [1, 1] : tensor<?x64xf32> to tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
