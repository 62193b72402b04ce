// RUN: kiln-opt %s --split-input-file --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s --enable-var-scope

// An all-reduce is one call of rt->communicate (KilnRtContext's fourth
// pointer) with op 0, the device addresses of its input and of its result's
// scratch slot and T * 64 values, on the stream between the kernels around
// it: no kernel of its own, no barrier. tid is 0: the GPU step runs once.
// CHECK-LABEL: func.func @all_reduce(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_add"]
// CHECK: %[[VIEW:.*]] = memref.view %arg3
// CHECK: memref.extract_aligned_pointer_as_index %arg0
// CHECK: %[[IN:.*]] = llvm.inttoptr
// CHECK: memref.extract_aligned_pointer_as_index %[[VIEW]]
// CHECK: %[[OUT:.*]] = llvm.inttoptr
// CHECK: %[[T:.*]] = memref.dim %arg0
// CHECK: %[[N:.*]] = arith.muli %[[T]], %c64
// CHECK: %[[N64:.*]] = arith.index_cast %[[N]] : index to i64
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %arg4[3] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[FN:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: %[[OP:.*]] = arith.constant 0 : i32
// CHECK: %[[PEER:.*]] = arith.constant 0 : i32
// CHECK: %[[TID:.*]] = arith.constant 0 : i32
// CHECK: llvm.call %[[FN]](%arg4, %[[OP]], %[[PEER]], %[[IN]], %[[OUT]], %[[N64]], %[[TID]]) : !llvm.ptr, (!llvm.ptr, i32, i32, !llvm.ptr, !llvm.ptr, i64, i32) -> ()
// The add reads the all-reduced slot: launched after it, on the stream.
// CHECK: memref.dim %[[VIEW]]
// CHECK: llvm.call
func.func @all_reduce(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %s = kiln.all_reduce %x : tensor<?x64xf32>
  %y = kiln.add %s, %x : tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// A pipeline stage's send (op 1) passes no output, the next stage's recv
// (op 2) no input; both name the peer rank. The recv writes the returned
// value's out-parameter (%arg2) directly, its rows those of the tokens.
// CHECK-LABEL: func.func @send_recv(
// CHECK: %[[NULL:.*]] = llvm.mlir.zero : !llvm.ptr
// CHECK: llvm.call %{{.*}}(%arg5, %c1_i32{{.*}}, %c3_i32{{.*}}, %{{.*}}, %[[NULL]], %{{.*}}, %c0_i32{{.*}})
// CHECK: %[[NULL2:.*]] = llvm.mlir.zero : !llvm.ptr
// CHECK: memref.extract_aligned_pointer_as_index %arg2
// CHECK: %[[RECV:.*]] = llvm.inttoptr
// CHECK: %[[ROWS:.*]] = memref.dim %arg2
// CHECK: arith.muli %[[ROWS]], %c64
// CHECK: llvm.call %{{.*}}(%arg5, %c2_i32{{.*}}, %c2_i32{{.*}}, %[[NULL2]], %[[RECV]], %{{.*}}, %c0_i32{{.*}})
func.func @send_recv(%tokens: tensor<?xi32>, %x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  kiln.send %x to 3 : tensor<?x64xf32>
  %r = kiln.recv from 2 rows(%tokens) : tensor<?xi32> -> tensor<?x64xf32>
  return %r : tensor<?x64xf32>
}
