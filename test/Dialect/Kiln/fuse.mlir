// RUN: kiln-opt %s --kiln-fuse | FileCheck %s
// RUN: kiln-opt %s --kiln-fuse --kiln-fuse | FileCheck %s

// The residual connection after a projection becomes the projection's
// residual operand; the layer keeps its place (the residual exists there).
// CHECK-LABEL: func.func @residual
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[R:.*]]: tensor<?x64xf32>, %[[W:.*]]: !kiln.weight<64x32xf32>, %[[B:.*]]: !kiln.weight<64xf32>)
// CHECK-NEXT: %[[Y:.*]] = kiln.linear %[[X]], %[[W]], bias %[[B]] residual %[[R]] :
// CHECK-NEXT: return %[[Y]]
func.func @residual(%x: tensor<?x32xf32>, %r: tensor<?x64xf32>, %w: !kiln.weight<64x32xf32>, %b: !kiln.weight<64xf32>) -> tensor<?x64xf32> {
  %y = kiln.linear %x, %w, bias %b : tensor<?x32xf32>, !kiln.weight<64x32xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %z = kiln.add %r, %y : tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// Either operand order; the residual may itself be a linear layer's result
// computed before.
// CHECK-LABEL: func.func @residual_lhs
// CHECK: %[[A:.*]] = kiln.linear %{{.*}}, %{{.*}} : tensor<?x32xf32>
// CHECK-NEXT: %[[Y:.*]] = kiln.linear %{{.*}}, %{{.*}} residual %[[A]] :
// CHECK-NEXT: return %[[Y]]
func.func @residual_lhs(%x: tensor<?x32xf32>, %w: !kiln.weight<64x32xf32>, %v: !kiln.weight<64x32xf32>) -> tensor<?x64xf32> {
  %a = kiln.linear %x, %v : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %y = kiln.linear %x, %w : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %z = kiln.add %y, %a : tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}

// Not fused: the product has another use (it must exist on its own), the
// other operand is computed after the layer, and y + y.
// CHECK-LABEL: func.func @not_fused
// CHECK: %[[Y:.*]] = kiln.linear %{{.*}}, %{{.*}} :
// CHECK-NOT: residual
// CHECK: kiln.add %[[Y]], %{{.*}}
// CHECK: kiln.add %[[P:.*]], %[[Q:.*]] :
// CHECK: kiln.add %{{.*}}, %{{.*}} :
// CHECK: return
func.func @not_fused(%x: tensor<?x32xf32>, %r: tensor<?x64xf32>, %w: !kiln.weight<64x32xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  %y = kiln.linear %x, %w : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %z = kiln.add %y, %r : tensor<?x64xf32>
  %p = kiln.linear %x, %w : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %q = kiln.silu %r : tensor<?x64xf32>
  %s = kiln.add %p, %q : tensor<?x64xf32>
  %t = kiln.linear %x, %w : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %u = kiln.add %t, %t : tensor<?x64xf32>
  return %y, %z, %s, %u : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}
