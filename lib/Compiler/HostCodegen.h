//===- HostCodegen.h - LLVM-dialect module to a host shared object -*- C++ -*-===//
//
// The last step of the CPU route: an MLIR module that holds only `llvm.*` ops
// (the end of the CPU lowering) becomes native code for one CPU variant. The
// module is translated to LLVM IR, optimized with the O3 pipeline tuned for the
// variant, compiled to an object and linked in-process with lld into an ELF
// shared object, returned as bytes.
//
// How the runtime loads the result: the artifact carries one shared object per
// variant in getCpuTargets(), together with the variant's runtimeFeatures. The
// runtime picks the first variant whose features the CPU has (cpuid), writes
// the bytes to a memfd (or a temporary file) and dlopen()s it with RTLD_NOW |
// RTLD_LOCAL, then looks up the `_mlir_ciface_*` entry points (see
// include/kiln/runtime/HostABI.h). The object links no libc: references such
// as `expf`, `memcpy`, `memset` or `malloc` are left undefined and bind at
// dlopen time to the runtime process's libc.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_HOSTCODEGEN_H
#define KILN_COMPILER_HOSTCODEGEN_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/Error.h"
#include "llvm/Target/TargetMachine.h"

#include <memory>

#include <string>
#include <vector>

namespace kiln {

/// One CPU variant the artifact ships code for.
struct CpuTarget {
  /// Variant name, as written in the artifact ("x86-64-v4").
  std::string name;
  /// LLVM CPU name passed to the TargetMachine.
  std::string cpu;
  /// LLVM subtarget features on top of `cpu` ("+avx512vnni,...").
  std::string features;
  /// Feature names the runtime checks before it picks this variant: any of
  /// "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni",
  /// "avx512bf16", "fma", "f16c", "avx2".
  std::vector<std::string> runtimeFeatures;
};

/// The variants, best first: x86-64-v4 with AVX512-VNNI and AVX512-BF16, then
/// x86-64-v3 (AVX2, FMA, F16C).
llvm::ArrayRef<CpuTarget> getCpuTargets();

/// The variant called `name`, or nullptr if there is none.
const CpuTarget *lookupCpuTarget(llvm::StringRef name);

/// A variant's module translated to LLVM IR, in an LLVM context of its own.
/// What is left of code generation touches no MLIR, so the variants of one
/// module compile on threads of their own (their MLIR modules share a context
/// that may be single-threaded: translation itself is not thread-safe).
struct HostModule {
  CpuTarget target;
  std::unique_ptr<llvm::TargetMachine> machine;
  std::unique_ptr<llvm::LLVMContext> context;
  /// Declared after its context, so that it is destroyed first.
  std::unique_ptr<llvm::Module> module;
};

/// Translates `llvmDialectModule` to LLVM IR for `target`. Fails with a
/// message if the module holds ops outside the LLVM dialect. Uses the module's
/// MLIRContext: one call at a time per context.
llvm::Expected<HostModule> translateForHost(mlir::ModuleOp llvmDialectModule,
                                            const CpuTarget &target);

/// Runs O3 for the module's target, emits an object and links it with lld
/// (in-process) into an ELF shared object for x86_64-unknown-linux-gnu.
/// Returns the bytes of the shared object. Thread-safe: touches no MLIR.
llvm::Expected<std::string> compileSharedObject(HostModule host);

/// translateForHost, then compileSharedObject.
llvm::Expected<std::string> emitSharedObject(mlir::ModuleOp llvmDialectModule,
                                             const CpuTarget &target);

/// The optimized LLVM IR that emitSharedObject compiles (for --emit=llvm).
llvm::Expected<std::string> emitLLVMIR(mlir::ModuleOp llvmDialectModule,
                                       const CpuTarget &target);

/// The assembly of the object emitSharedObject links (for --emit=asm).
llvm::Expected<std::string> emitAssembly(mlir::ModuleOp llvmDialectModule,
                                         const CpuTarget &target);

} // namespace kiln

#endif // KILN_COMPILER_HOSTCODEGEN_H
