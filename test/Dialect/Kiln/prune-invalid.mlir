// RUN: not kiln-opt %s --kiln-prune="rate=1.5" 2>&1 | FileCheck %s --check-prefix=RATE
// RUN: not kiln-opt %s --kiln-prune="pattern=nm n=3 m=2" 2>&1 | FileCheck %s --check-prefix=NM
// RUN: not kiln-opt %s --kiln-prune="pattern=nm n=2 m=8" 2>&1 | FileCheck %s --check-prefix=DIVIDE
// RUN: not kiln-opt %s --kiln-prune="pattern=block block=4x4" 2>&1 | FileCheck %s --check-prefix=TILE
// RUN: not kiln-opt %s --kiln-prune="pattern=block block=4" 2>&1 | FileCheck %s --check-prefix=BLOCK
// RUN: not kiln-opt %s --kiln-prune="pattern=2:4" 2>&1 | FileCheck %s --check-prefix=PATTERN
// RUN: not kiln-opt %s --kiln-prune="criterion=random" 2>&1 | FileCheck %s --check-prefix=CRITERION
// RUN: not kiln-opt %s --kiln-prune="criterion=wanda" 2>&1 | FileCheck %s --check-prefix=NOSTATS
// RUN: not kiln-opt %s --kiln-prune="criterion=sparsegpt pattern=block calibration=x" 2>&1 | FileCheck %s --check-prefix=GPTBLOCK
// RUN: not kiln-opt %s --kiln-prune="criterion=wanda calibration=%t/no-such.kstats" 2>&1 | FileCheck %s --check-prefix=MISSING
// RUN: not kiln-opt %s --kiln-prune --kiln-quantize="bits=4 group=12 symmetric=false" 2>&1 | FileCheck %s --check-prefix=ASYM

// RATE: error: prune: rate=1.5 is out of range [0, 1)
// NM: error: prune: 3:2 sparsity needs 0 < n < m
// DIVIDE: error: 'kiln.weight' op prune: 2:8 needs K = 12 to be a multiple of 8
// TILE: error: 'kiln.weight' op prune: block=4x4 does not tile a weight of 2x12
// BLOCK: error: prune: block=4 is not rows x columns (e.g. 4x4)
// PATTERN: error: prune: pattern=2:4 is not one of unstructured, nm, block
// CRITERION: error: prune: criterion=random is not one of magnitude, wanda, sparsegpt
// NOSTATS: error: prune: criterion=wanda needs calibration=<statistics file>
// GPTBLOCK: error: prune: criterion=sparsegpt prunes pattern=unstructured or nm, not block
// MISSING: error: prune: {{.*}}no-such.kstats{{.*}}
// ASYM: error: 'kiln.weight' op quantize: a pruned weight needs symmetric quantization (sym) to keep its zeros

func.func @f(%x: tensor<1x12xf32>) -> tensor<1x2xf32> {
  %w = kiln.weight dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]> : tensor<24xf32> -> !kiln.weight<2x12xf32>
  %y = kiln.linear %x, %w : tensor<1x12xf32>, !kiln.weight<2x12xf32> -> tensor<1x2xf32>
  return %y : tensor<1x2xf32>
}
