// RUN: kiln-opt %s --split-input-file "--kiln-fuse=rope-epilogue=false activation-bits=0" --kiln-plan-memory --convert-kiln-to-gpu | FileCheck %s

// The GEMV kernel per weight encoding and the host step that launches it.
// The host function keeps the CPU step's signature; its body takes the
// device addresses of x, the weight (%weights + its offset) and y, stores
// them in the kernel parameter array and calls rt->launch (the third
// pointer of KilnRtContext) with the kernel's index: for T = 1 the decode
// kernel on ceil(N / 4) blocks of 128 threads (one warp per output row),
// else the prefill kernel (_t4: each warp takes 4 tokens) on
// (ceil(N / 4), ceil(T / 4)) blocks, with T as its last argument.
// The decode kernel first copies the activations and its rows into its two
// shared-memory arrays (16-byte aligned) and waits at a gpu.barrier; its
// decoder then reads the row there. Decoders view the row with the widest
// load the encoding allows: vector<4xf32> (128-bit) for activations and
// f32/f16 rows, i32 words for Q4_1 and Q4_K, i16 for Q4_0, Q5_0, Q5_1, Q8_0
// and Q6_K.


// -----

// CHECK-LABEL: func.func @gemv_f32(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x64xf32>, %[[Y:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<?xi8>, %{{.*}}: memref<?xi8>, %[[RT:[^:]*]]: !llvm.ptr, %{{.*}}: i32, %{{.*}}: i32)
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_f32_64x64", "kiln_gemv_f32_64x64_t4"]
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %[[RT]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: memref.subview %[[W]][
// CHECK: %[[T:.*]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: memref.extract_aligned_pointer_as_index %[[X]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: arith.constant 128 : i32
// CHECK: %[[KERNEL:.*]] = arith.constant 0 : i32
// CHECK: llvm.call %[[LAUNCH]](%[[RT]], %[[KERNEL]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, i32, !llvm.ptr, !llvm.ptr, i32, !llvm.ptr) -> i32
// CHECK: } else {
// CHECK: arith.addi %[[T]], %c3{{.*}} : index
// CHECK: arith.index_castui %[[T]] : index to i64
// CHECK: llvm.call %[[LAUNCH]](%[[RT]],
// CHECK: return
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @kiln_gemv_f32_64x64(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>) workgroup(%{{.*}} : memref<{{[0-9]+}}xvector<4xf32>, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<{{[0-9]+}}xi8, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: memref.view {{.*}} to memref<68719476736xvector<4xf32>>
// CHECK: gpu.barrier
// CHECK: vector<4xf32>
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: memref.store
// CHECK: gpu.func @kiln_gemv_f32_64x64_t4(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel
// CHECK: arith.minui
// CHECK-COUNT-20: gpu.shuffle  xor
func.func @gemv_f32(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 16384> -> !kiln.weight<64x64xf32>
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @gemv_f16(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x64xf32>, %[[Y:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<?xi8>, %{{.*}}: memref<?xi8>, %[[RT:[^:]*]]: !llvm.ptr, %{{.*}}: i32, %{{.*}}: i32)
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_f16_64x64", "kiln_gemv_f16_64x64_t4"]
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %[[RT]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: memref.subview %[[W]][
// CHECK: %[[T:.*]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: memref.extract_aligned_pointer_as_index %[[X]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: arith.constant 128 : i32
// CHECK: %[[KERNEL:.*]] = arith.constant 0 : i32
// CHECK: llvm.call %[[LAUNCH]](%[[RT]], %[[KERNEL]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, i32, !llvm.ptr, !llvm.ptr, i32, !llvm.ptr) -> i32
// CHECK: } else {
// CHECK: arith.addi %[[T]], %c3{{.*}} : index
// CHECK: arith.index_castui %[[T]] : index to i64
// CHECK: llvm.call %[[LAUNCH]](%[[RT]],
// CHECK: return
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @kiln_gemv_f16_64x64(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>) workgroup(%{{.*}} : memref<{{[0-9]+}}xvector<4xf32>, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<{{[0-9]+}}xi8, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: memref.view {{.*}} to memref<68719476736xvector<4xf32>>
// CHECK: gpu.barrier
// CHECK: vector<4xi32>
// CHECK: vector.bitcast %{{.*}} : vector<4xi32> to vector<8xf16>
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: memref.store
// CHECK: gpu.func @kiln_gemv_f16_64x64_t4(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel
// CHECK: arith.minui
// CHECK-COUNT-20: gpu.shuffle  xor
func.func @gemv_f16(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 8192> -> !kiln.weight<64x64xf16>
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64xf16> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @gemv_q4_0(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x64xf32>, %[[Y:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<?xi8>, %{{.*}}: memref<?xi8>, %[[RT:[^:]*]]: !llvm.ptr, %{{.*}}: i32, %{{.*}}: i32)
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q4_0_64x64", "kiln_gemv_q4_0_64x64_t4"]
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %[[RT]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: memref.subview %[[W]][
// CHECK: %[[T:.*]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: memref.extract_aligned_pointer_as_index %[[X]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: arith.constant 128 : i32
// CHECK: %[[KERNEL:.*]] = arith.constant 0 : i32
// CHECK: llvm.call %[[LAUNCH]](%[[RT]], %[[KERNEL]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, i32, !llvm.ptr, !llvm.ptr, i32, !llvm.ptr) -> i32
// CHECK: } else {
// CHECK: arith.addi %[[T]], %c3{{.*}} : index
// CHECK: arith.index_castui %[[T]] : index to i64
// CHECK: llvm.call %[[LAUNCH]](%[[RT]],
// CHECK: return
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @kiln_gemv_q4_0_64x64(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>) workgroup(%{{.*}} : memref<{{[0-9]+}}xvector<4xf32>, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<{{[0-9]+}}xi8, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: memref.view {{.*}} to memref<68719476736xvector<4xf32>>
// CHECK: gpu.barrier
// CHECK: xi16, #gpu.address_space<workgroup>>
// CHECK: arith.bitcast %{{.*}} : i16 to f16
// CHECK: arith.andi %{{.*}}, %{{.*}} : i32
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: memref.store
// CHECK: gpu.func @kiln_gemv_q4_0_64x64_t4(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel
// CHECK: arith.minui
// CHECK-COUNT-20: gpu.shuffle  xor
func.func @gemv_q4_0(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2304> -> !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @gemv_q4_1(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x64xf32>, %[[Y:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<?xi8>, %{{.*}}: memref<?xi8>, %[[RT:[^:]*]]: !llvm.ptr, %{{.*}}: i32, %{{.*}}: i32)
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q4_1_64x64", "kiln_gemv_q4_1_64x64_t4"]
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %[[RT]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: memref.subview %[[W]][
// CHECK: %[[T:.*]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: memref.extract_aligned_pointer_as_index %[[X]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: arith.constant 128 : i32
// CHECK: %[[KERNEL:.*]] = arith.constant 0 : i32
// CHECK: llvm.call %[[LAUNCH]](%[[RT]], %[[KERNEL]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, i32, !llvm.ptr, !llvm.ptr, i32, !llvm.ptr) -> i32
// CHECK: } else {
// CHECK: arith.addi %[[T]], %c3{{.*}} : index
// CHECK: arith.index_castui %[[T]] : index to i64
// CHECK: llvm.call %[[LAUNCH]](%[[RT]],
// CHECK: return
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @kiln_gemv_q4_1_64x64(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>) workgroup(%{{.*}} : memref<{{[0-9]+}}xvector<4xf32>, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<{{[0-9]+}}xi8, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: memref.view {{.*}} to memref<68719476736xvector<4xf32>>
// CHECK: gpu.barrier
// CHECK: xi32, #gpu.address_space<workgroup>>
// CHECK: arith.bitcast %{{.*}} : i16 to f16
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: memref.store
// CHECK: gpu.func @kiln_gemv_q4_1_64x64_t4(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel
// CHECK: arith.minui
// CHECK-COUNT-20: gpu.shuffle  xor
func.func @gemv_q4_1(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2560> -> !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @gemv_q8_0(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x64xf32>, %[[Y:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<?xi8>, %{{.*}}: memref<?xi8>, %[[RT:[^:]*]]: !llvm.ptr, %{{.*}}: i32, %{{.*}}: i32)
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q8_0_64x64", "kiln_gemv_q8_0_64x64_t4"]
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %[[RT]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: memref.subview %[[W]][
// CHECK: %[[T:.*]] = memref.dim %[[X]], %{{.*}} : memref<?x64xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: memref.extract_aligned_pointer_as_index %[[X]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: arith.constant 128 : i32
// CHECK: %[[KERNEL:.*]] = arith.constant 0 : i32
// CHECK: llvm.call %[[LAUNCH]](%[[RT]], %[[KERNEL]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, i32, !llvm.ptr, !llvm.ptr, i32, !llvm.ptr) -> i32
// CHECK: } else {
// CHECK: arith.addi %[[T]], %c3{{.*}} : index
// CHECK: arith.index_castui %[[T]] : index to i64
// CHECK: llvm.call %[[LAUNCH]](%[[RT]],
// CHECK: return
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @kiln_gemv_q8_0_64x64(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>) workgroup(%{{.*}} : memref<{{[0-9]+}}xvector<4xf32>, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<{{[0-9]+}}xi8, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: memref.view {{.*}} to memref<68719476736xvector<4xf32>>
// CHECK: gpu.barrier
// CHECK: xi16, #gpu.address_space<workgroup>>
// CHECK: arith.shrsi
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: memref.store
// CHECK: gpu.func @kiln_gemv_q8_0_64x64_t4(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel
// CHECK: arith.minui
// CHECK-COUNT-20: gpu.shuffle  xor
func.func @gemv_q8_0(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 4352> -> !kiln.weight<64x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 8, group = 32, scale = f16, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @gemv_q4_K(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x256xf32>, %[[Y:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<?xi8>, %{{.*}}: memref<?xi8>, %[[RT:[^:]*]]: !llvm.ptr, %{{.*}}: i32, %{{.*}}: i32)
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q4_K_64x256", "kiln_gemv_q4_K_64x256_t4"]
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %[[RT]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: memref.subview %[[W]][
// CHECK: %[[T:.*]] = memref.dim %[[X]], %{{.*}} : memref<?x256xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: memref.extract_aligned_pointer_as_index %[[X]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: arith.constant 128 : i32
// CHECK: %[[KERNEL:.*]] = arith.constant 0 : i32
// CHECK: llvm.call %[[LAUNCH]](%[[RT]], %[[KERNEL]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, i32, !llvm.ptr, !llvm.ptr, i32, !llvm.ptr) -> i32
// CHECK: } else {
// CHECK: arith.addi %[[T]], %c3{{.*}} : index
// CHECK: arith.index_castui %[[T]] : index to i64
// CHECK: llvm.call %[[LAUNCH]](%[[RT]],
// CHECK: return
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @kiln_gemv_q4_K_64x256(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>) workgroup(%{{.*}} : memref<{{[0-9]+}}xvector<4xf32>, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<{{[0-9]+}}xi8, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: memref.view {{.*}} to memref<68719476736xvector<4xf32>>
// CHECK: gpu.barrier
// CHECK: xi32, #gpu.address_space<workgroup>>
// CHECK: xi8, #gpu.address_space<workgroup>>
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: memref.store
// CHECK: gpu.func @kiln_gemv_q4_K_64x256_t4(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel
// CHECK: arith.minui
// CHECK-COUNT-20: gpu.shuffle  xor
func.func @gemv_q4_K(%x: tensor<?x256xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 9216> -> !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !kiln.weight<64x256x#kiln.quant<bits = 4, group = 32, scale = f16, zero = f16, super_group = 256, sub_scale_bits = 6, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @gemv_q6_K(
// CHECK-SAME: %[[X:[^:]*]]: memref<?x256xf32>, %[[Y:[^:]*]]: memref<?x64xf32>, %[[W:[^:]*]]: memref<?xi8>, %{{.*}}: memref<?xi8>, %[[RT:[^:]*]]: !llvm.ptr, %{{.*}}: i32, %{{.*}}: i32)
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q6_K_64x256", "kiln_gemv_q6_K_64x256_t4"]
// CHECK: %[[SLOT:.*]] = llvm.getelementptr %[[RT]][2] : (!llvm.ptr) -> !llvm.ptr, !llvm.ptr
// CHECK: %[[LAUNCH:.*]] = llvm.load %[[SLOT]] : !llvm.ptr -> !llvm.ptr
// CHECK: memref.subview %[[W]][
// CHECK: %[[T:.*]] = memref.dim %[[X]], %{{.*}} : memref<?x256xf32>
// CHECK: %[[DECODE:.*]] = arith.cmpi eq, %[[T]], %{{.*}} : index
// CHECK: scf.if %[[DECODE]] {
// CHECK: memref.extract_aligned_pointer_as_index %[[X]]
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK: arith.constant 128 : i32
// CHECK: %[[KERNEL:.*]] = arith.constant 0 : i32
// CHECK: llvm.call %[[LAUNCH]](%[[RT]], %[[KERNEL]], %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}) : !llvm.ptr, (!llvm.ptr, i32, !llvm.ptr, !llvm.ptr, i32, !llvm.ptr) -> i32
// CHECK: } else {
// CHECK: arith.addi %[[T]], %c3{{.*}} : index
// CHECK: arith.index_castui %[[T]] : index to i64
// CHECK: llvm.call %[[LAUNCH]](%[[RT]],
// CHECK: return
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @kiln_gemv_q6_K_64x256(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>) workgroup(%{{.*}} : memref<{{[0-9]+}}xvector<4xf32>, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<{{[0-9]+}}xi8, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: memref.view {{.*}} to memref<68719476736xvector<4xf32>>
// CHECK: gpu.barrier
// CHECK: xi16, #gpu.address_space<workgroup>>
// CHECK: xi8, #gpu.address_space<workgroup>>
// CHECK: arith.extsi
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: gpu.shuffle  xor
// CHECK: memref.store
// CHECK: gpu.func @kiln_gemv_q6_K_64x256_t4(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: index) kernel
// CHECK: arith.minui
// CHECK-COUNT-20: gpu.shuffle  xor
func.func @gemv_q6_K(%x: tensor<?x256xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 13440> -> !kiln.weight<64x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x256xf32>, !kiln.weight<64x256x#kiln.quant<bits = 6, group = 16, scale = f16, super_group = 256, sub_scale_bits = 8, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @gemv_q5_0(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q5_0_64x64", "kiln_gemv_q5_0_64x64_t4"]
// CHECK: gpu.func @kiln_gemv_q5_0_64x64(
// CHECK: memref.view {{.*}} to memref<{{[0-9]+}}xi16, #gpu.address_space<workgroup>>
// CHECK: arith.shli %{{.*}}, %c16_i32 : i32
// CHECK-COUNT-5: gpu.shuffle  xor
func.func @gemv_q5_0(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 2816> -> !kiln.weight<64x64x#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 5, group = 32, scale = f16, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// CHECK-LABEL: func.func @gemv_q5_1(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_q5_1_64x64", "kiln_gemv_q5_1_64x64_t4"]
// CHECK: gpu.func @kiln_gemv_q5_1_64x64(
// CHECK: memref.view {{.*}} to memref<{{[0-9]+}}xi16, #gpu.address_space<workgroup>>
// CHECK: llvm.intr.fma
// CHECK-COUNT-5: gpu.shuffle  xor
func.func @gemv_q5_1(%x: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 3072> -> !kiln.weight<64x64x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, layout = gguf>>
  %y = kiln.linear %x, %w : tensor<?x64xf32>, !kiln.weight<64x64x#kiln.quant<bits = 5, group = 32, scale = f16, zero = f16, layout = gguf>> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}

// -----

// kiln-fuse folds the residual add into the linear layer: the kernel adds
// the bias and the residual in its epilogue (lane 0), and the host passes
// both buffers.
// CHECK-LABEL: func.func @gemv_bias_residual(
// CHECK-SAME: kiln.cuda_kernels = ["kiln_gemv_f32_64x64_bias_residual", "kiln_gemv_f32_64x64_bias_residual_t4"]
// CHECK: gpu.func @kiln_gemv_f32_64x64_bias_residual(%{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>, %{{.*}}: memref<1099511627776xi8>) workgroup(%{{.*}} : memref<{{[0-9]+}}xvector<4xf32>, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %{{.*}} : memref<{{[0-9]+}}xi8, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}) kernel
// CHECK: gpu.shuffle  xor
// CHECK: scf.if
// CHECK: %[[B:.*]] = memref.load {{.*}} : memref<274877906944xf32>
// CHECK: %[[S:.*]] = arith.addf %{{.*}}, %[[B]] : f32
// CHECK: %[[R:.*]] = memref.load {{.*}} : memref<274877906944xf32>
// CHECK: %[[SR:.*]] = arith.addf %[[S]], %[[R]] : f32
// CHECK: memref.store %[[SR]]
func.func @gemv_bias_residual(%x: tensor<?x64xf32>, %r: tensor<?x64xf32>) -> tensor<?x64xf32> attributes {kiln.max_tokens = 8} {
  %w = kiln.weight #kiln.external<"w.bin", offset = 0, size = 16384> -> !kiln.weight<64x64xf32>
  %b = kiln.weight #kiln.external<"w.bin", offset = 16384, size = 256> -> !kiln.weight<64xf32>
  %y = kiln.linear %x, %w, bias %b : tensor<?x64xf32>, !kiln.weight<64x64xf32>, !kiln.weight<64xf32> -> tensor<?x64xf32>
  %z = kiln.add %y, %r : tensor<?x64xf32>
  return %z : tensor<?x64xf32>
}
