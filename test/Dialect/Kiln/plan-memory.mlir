// RUN: kiln-opt %s --split-input-file --kiln-plan-memory --verify-diagnostics | FileCheck %s
// RUN: kiln-opt %s --kiln-plan-memory=max-tokens=2 | FileCheck %s --check-prefix=BOUND2
// RUN: kiln-opt %s "--kiln-plan-memory=max-tokens=8 reuse=false" | FileCheck %s --check-prefix=NOREUSE

// A chain of four: a slot is reserved one op past its last use, so the third
// value cannot take the first's bytes (the second op may still read them on
// another thread), the fourth can. The returned value has no slot (it is
// computed into its out-parameter). 8 rows x 16 f32 = 512 bytes each.
// CHECK-LABEL: func.func @chain
// CHECK-SAME: kiln.max_tokens = 8 : i64
// CHECK-SAME: kiln.planned_bytes = 1536 : i64
// CHECK: kiln.silu %{{.*}} {kiln.slot = array<i64: 0, 512>}
// CHECK: kiln.silu %{{.*}} {kiln.slot = array<i64: 512, 512>}
// CHECK: kiln.silu %{{.*}} {kiln.slot = array<i64: 1024, 512>}
// CHECK: kiln.silu %{{.*}} {kiln.slot = array<i64: 0, 512>}
// CHECK: %[[R:.*]] = kiln.silu %{{.*}} : tensor<?x16xf32>
// CHECK-NEXT: return %[[R]]
// The option overrides the function's bound (and is recorded; with it, the
// last case below has a bound too).
// BOUND2-LABEL: func.func @chain
// BOUND2-SAME: kiln.max_tokens = 2 : i64
// BOUND2-SAME: kiln.planned_bytes = 384 : i64
// Without reuse (calibration), the fourth value gets bytes of its own too.
// NOREUSE-LABEL: func.func @chain
// NOREUSE-SAME: kiln.planned_bytes = 2048 : i64
// NOREUSE: kiln.silu %{{.*}} {kiln.slot = array<i64: 0, 512>}
// NOREUSE: kiln.silu %{{.*}} {kiln.slot = array<i64: 512, 512>}
// NOREUSE: kiln.silu %{{.*}} {kiln.slot = array<i64: 1024, 512>}
// NOREUSE: kiln.silu %{{.*}} {kiln.slot = array<i64: 1536, 512>}
func.func @chain(%x: tensor<?x16xf32>) -> tensor<?x16xf32> attributes {kiln.max_tokens = 8} {
  %a = kiln.silu %x : tensor<?x16xf32>
  %b = kiln.silu %a : tensor<?x16xf32>
  %c = kiln.silu %b : tensor<?x16xf32>
  %d = kiln.silu %c : tensor<?x16xf32>
  %e = kiln.silu %d : tensor<?x16xf32>
  return %e : tensor<?x16xf32>
}

// -----

// A use of a view (a row slice, a reshape) keeps the viewed value alive; the
// view itself has no slot. Static shapes need no bound.
// CHECK-LABEL: func.func @views
// CHECK-SAME: kiln.planned_bytes = 384 : i64
// CHECK: %[[A:.*]] = kiln.silu %{{.*}} {kiln.slot = array<i64: 0, 256>}
// CHECK: tensor.extract_slice %[[A]]
// CHECK-NOT: kiln.slot
// CHECK: kiln.silu %{{.*}} {kiln.slot = array<i64: 256, 128>}
// CHECK: kiln.add
func.func @views(%x: tensor<4x16xf32>) -> tensor<2x16xf32> {
  %a = kiln.silu %x : tensor<4x16xf32>
  %s = tensor.extract_slice %a[0, 0] [2, 16] [1, 1] : tensor<4x16xf32> to tensor<2x16xf32>
  %b = kiln.silu %s : tensor<2x16xf32>
  %c = kiln.add %b, %s : tensor<2x16xf32>
  return %c : tensor<2x16xf32>
}

// -----

// Functions without kiln ops are not step functions: untouched.
// CHECK-LABEL: func.func @plain
// CHECK-NOT: kiln.planned_bytes
func.func @plain(%x: index) -> index {
  return %x : index
}

// -----

func.func @unbounded(%x: tensor<?x16xf32>) -> tensor<?x16xf32> {
  // expected-error @+1 {{'kiln.silu' op result size overflows or has a dynamic dimension with no kiln.max_tokens bound}}
  %a = kiln.silu %x : tensor<?x16xf32>
  %b = kiln.silu %a : tensor<?x16xf32>
  return %b : tensor<?x16xf32>
}

// -----

// A slot per result: kiln.quantize's codes and scales (found by the lowering's
// invalid-input tests, where the second result's slot overwrote the first's).
// CHECK-LABEL: func.func @two_results
// CHECK: kiln.quantize %{{.*}} {bits = 8 : i64, group = 32 : i64, kiln.slot = array<i64: 0, 512, 512, 64>}
func.func @two_results(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %c, %s = kiln.quantize %x {bits = 8, group = 32} : tensor<?x64xf32> -> tensor<?x64xi8>, tensor<?x2xf32>
  %y = kiln.dequantize %c, %s {bits = 8, group = 32} : tensor<?x64xi8>, tensor<?x2xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
