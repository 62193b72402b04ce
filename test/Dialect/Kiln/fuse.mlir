// RUN: kiln-opt %s --kiln-fuse | FileCheck %s
// RUN: kiln-opt %s --kiln-fuse --kiln-fuse | FileCheck %s
// RUN: kiln-opt %s --kiln-fuse=rope-epilogue=false | FileCheck %s --check-prefix=NOROPE

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

// A llama-style rope over whole heads, the only use of a projection, becomes
// the projection's rope epilogue; the position is an argument.
// CHECK-LABEL: func.func @rope
// CHECK-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[P:.*]]: index, %[[W:.*]]: !kiln.weight<64x32xf32>, %[[B:.*]]: !kiln.weight<64xf32>)
// CHECK-NEXT: %[[Y:.*]] = kiln.linear %[[X]], %[[W]], bias %[[B]] rope(%[[P]], #kiln.rope<num_heads = 2, head_dim = 32, rotary_dim = 32, style = llama, freq_base = 1.000000e+04, freq_scale = 5.000000e-01>) :
// CHECK-NEXT: return %[[Y]]
func.func @rope(%x: tensor<?x32xf32>, %p: index, %w: !kiln.weight<64x32xf32>, %b: !kiln.weight<64xf32>) -> tensor<?x64xf32> {
  %y = kiln.linear %x, %w, bias %b : tensor<?x32xf32>, !kiln.weight<64x32xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %r = kiln.rope %y, %p {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32, freq_scale = 0.5 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}

// Not folded: a neox rope, a partial rope, a projection with another use, a
// projection with a residual, and a rope whose position is computed after the
// projection.
// CHECK-LABEL: func.func @rope_not_fused
// CHECK-NOT: #kiln.rope<
// CHECK-COUNT-5: kiln.rope %
// CHECK-NOT: #kiln.rope<
// CHECK: return
func.func @rope_not_fused(%x: tensor<?x32xf32>, %p: index, %w: !kiln.weight<64x32xf32>, %res: tensor<?x64xf32>) -> (tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>) {
  %a = kiln.linear %x, %w : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %ra = kiln.rope %a, %p {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<neox>, freq_base = 10000.0 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  %b = kiln.linear %x, %w : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %rb = kiln.rope %b, %p {num_heads = 2, head_dim = 32, rotary_dim = 16, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  %c = kiln.linear %x, %w : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %rc = kiln.rope %c, %p {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  %d = kiln.linear %x, %w residual %res : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %rd = kiln.rope %d, %p {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  %e = kiln.linear %x, %w : tensor<?x32xf32>, !kiln.weight<64x32xf32> -> tensor<?x64xf32>
  %q = arith.addi %p, %p : index
  %re = kiln.rope %e, %q {num_heads = 2, head_dim = 32, rotary_dim = 32, style = #kiln.rope_style<llama>, freq_base = 10000.0 : f32} : tensor<?x64xf32> -> tensor<?x64xf32>
  return %ra, %rb, %c, %rc, %rd, %re : tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>, tensor<?x64xf32>
}

// Without rope-epilogue (f32 activations on the CPU) the rope stays an op.
// NOROPE-LABEL: func.func @rope
// NOROPE: kiln.linear
// NOROPE-NOT: #kiln.rope<
// NOROPE: kiln.rope
