//===- HostCodegen.cpp - LLVM-dialect module to a host shared object ------===//
//
// MLIR (LLVM dialect) -> LLVM IR -> O3 -> object -> lld -> ELF shared object.
//
//===----------------------------------------------------------------------===//

#include "Compiler/HostCodegen.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Target/LLVMIR/LLVMTranslationInterface.h"

#include "lld/Common/Driver.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/Verifier.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Triple.h"

#include <mutex>

LLD_HAS_DRIVER(elf)

using namespace kiln;

namespace {

constexpr llvm::StringLiteral kTriple = "x86_64-unknown-linux-gnu";

/// Where the fallback linker lives when lld cannot be re-entered in-process.
constexpr llvm::StringLiteral kLldBinDir = "/usr/lib/llvm-22/bin";

llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

void initializeX86Once() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
    LLVMInitializeX86AsmParser();
  });
}

void registerTranslations(mlir::MLIRContext *context) {
  mlir::DialectRegistry registry;
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
  context->appendDialectRegistry(registry);
}

llvm::Expected<std::unique_ptr<llvm::TargetMachine>>
createTargetMachine(const CpuTarget &target) {
  initializeX86Once();
  llvm::Triple triple(kTriple);
  std::string error;
  const llvm::Target *llvmTarget =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!llvmTarget)
    return makeError(llvm::Twine("no LLVM target for ") + kTriple + ": " + error);
  // Default TargetOptions: IEEE semantics unless the IR's fast-math flags say
  // otherwise.
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(llvmTarget->createTargetMachine(
      triple, target.cpu, target.features, options, llvm::Reloc::PIC_,
      llvm::CodeModel::Small, llvm::CodeGenOptLevel::Aggressive));
  if (!machine)
    return makeError("cannot create a target machine for CPU variant '" +
                     target.name + "' (cpu " + target.cpu + ")");
  return machine;
}

/// Checks that every op can be translated to LLVM IR, so that a module the
/// lowering left unfinished gets a message naming the op and where it is.
llvm::Error checkTranslatable(mlir::ModuleOp module) {
  std::string message;
  module.walk<mlir::WalkOrder::PreOrder>([&](mlir::Operation *op) {
    if (op == module.getOperation())
      return mlir::WalkResult::advance();
    mlir::Dialect *dialect = op->getDialect();
    if (dialect && dialect->getRegisteredInterface<
                       mlir::LLVMTranslationDialectInterface>())
      return mlir::WalkResult::advance();
    llvm::raw_string_ostream os(message);
    os << "op '" << op->getName() << "' at " << op->getLoc()
       << " is not in the LLVM dialect; lower the module to the LLVM dialect "
          "before host code generation";
    return mlir::WalkResult::interrupt();
  });
  if (!message.empty())
    return makeError(message);
  return llvm::Error::success();
}

/// Translates `module` to LLVM IR for `machine`: the part of host code
/// generation that touches the MLIR context.
llvm::Expected<std::unique_ptr<llvm::Module>>
translate(mlir::ModuleOp module, llvm::LLVMContext &llvmContext,
          llvm::TargetMachine &machine) {
  if (!module)
    return makeError("host codegen got a null module");
  registerTranslations(module->getContext());

  // Collect diagnostics instead of printing them, to return them as the error.
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(
      module->getContext(), [&](mlir::Diagnostic &diag) {
        llvm::raw_string_ostream os(diagnostics);
        if (!diagnostics.empty())
          os << "\n";
        os << diag.getLocation() << ": " << diag;
        return mlir::success();
      });

  if (mlir::failed(mlir::verify(module)))
    return makeError("host codegen got an invalid module:\n" + diagnostics);
  if (llvm::Error err = checkTranslatable(module))
    return err;

  std::unique_ptr<llvm::Module> llvmModule =
      mlir::translateModuleToLLVMIR(module, llvmContext, "kiln_host");
  if (!llvmModule)
    return makeError("translation to LLVM IR failed:\n" + diagnostics);

  llvmModule->setTargetTriple(machine.getTargetTriple());
  llvmModule->setDataLayout(machine.createDataLayout());

  // Name the variant on every function the lowering left unannotated, so that
  // the IR (and --emit=llvm) says what it was optimized for.
  for (llvm::Function &function : *llvmModule) {
    if (function.isDeclaration())
      continue;
    if (!function.hasFnAttribute("target-cpu"))
      function.addFnAttr("target-cpu", machine.getTargetCPU());
    if (!function.hasFnAttribute("target-features") &&
        !machine.getTargetFeatureString().empty())
      function.addFnAttr("target-features", machine.getTargetFeatureString());
  }

  std::string verifyMessage;
  llvm::raw_string_ostream verifyOs(verifyMessage);
  if (llvm::verifyModule(*llvmModule, &verifyOs))
    return makeError("translated LLVM IR is invalid:\n" + verifyMessage);
  return llvmModule;
}

/// Runs the O3 pipeline tuned for `machine` (no MLIR involved).
void optimize(llvm::Module &llvmModule, llvm::TargetMachine &machine) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  tuning.LoopInterleaving = true;
  tuning.LoopUnrolling = true;
  llvm::PassBuilder builder(&machine, tuning);
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager pipeline =
      builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  pipeline.run(llvmModule, mam);
}

/// Optimizes `host` and returns what `emit` makes of it: the one path behind
/// every emit kind.
llvm::Expected<std::string> emitOptimized(
    HostModule host,
    llvm::function_ref<llvm::Expected<std::string>(llvm::Module &,
                                                   llvm::TargetMachine &)>
        emit) {
  optimize(*host.module, *host.machine);
  return emit(*host.module, *host.machine);
}

/// Runs the backend on `module` and returns an object file or assembly text.
llvm::Expected<std::string> emitCode(HostModule host,
                                     llvm::CodeGenFileType fileType) {
  return emitOptimized(
      std::move(host),
      [&](llvm::Module &llvmModule,
          llvm::TargetMachine &machine) -> llvm::Expected<std::string> {
        llvm::SmallString<0> buffer;
        llvm::raw_svector_ostream os(buffer);
        llvm::legacy::PassManager codegen;
        if (machine.addPassesToEmitFile(codegen, os, nullptr, fileType))
          return makeError(
              "the X86 backend cannot emit " +
              llvm::Twine(fileType == llvm::CodeGenFileType::ObjectFile
                              ? "an object file"
                              : "assembly"));
        codegen.run(llvmModule);
        return std::string(buffer.str());
      });
}

/// Flags shared by the in-process and the subprocess link.
llvm::SmallVector<std::string> linkFlags(llvm::StringRef objectPath,
                                         llvm::StringRef outputPath,
                                         const CpuTarget &target) {
  return {"-shared",
          "--hash-style=gnu",
          "-z",
          "noexecstack",
          "-z",
          "relro",
          "-z",
          "now",
          "-soname",
          "kiln-host-" + target.name + ".so",
          "-o",
          outputPath.str(),
          objectPath.str()};
}

/// lld keeps per-link global state: serialize calls, and remember if a link
/// ever reports that lld cannot safely run again in this process.
std::mutex lldMutex;
bool lldInProcessUsable = true;

llvm::Error linkInProcess(llvm::ArrayRef<std::string> flags,
                          bool &canRunAgain) {
  llvm::SmallVector<const char *> argv = {"ld.lld"};
  for (const std::string &flag : flags)
    argv.push_back(flag.c_str());
  std::string out, err;
  llvm::raw_string_ostream outOs(out), errOs(err);
  lld::Result result =
      lld::lldMain(argv, outOs, errOs, {{lld::Gnu, &lld::elf::link}});
  canRunAgain = result.canRunAgain;
  if (result.retCode != 0)
    return makeError("lld failed to link the host shared object:\n" + err);
  return llvm::Error::success();
}

llvm::Error linkInSubprocess(llvm::ArrayRef<std::string> flags,
                             llvm::StringRef tempDir) {
  llvm::ErrorOr<std::string> lldPath =
      llvm::sys::findProgramByName("ld.lld", {kLldBinDir});
  if (!lldPath)
    return makeError(llvm::Twine("lld cannot run again in this process and "
                                 "ld.lld was not found in ") +
                     kLldBinDir);
  llvm::SmallString<256> logPath(tempDir);
  llvm::sys::path::append(logPath, "ld.log");
  llvm::SmallVector<llvm::StringRef> argv = {*lldPath};
  for (const std::string &flag : flags)
    argv.push_back(flag);
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, logPath.str(),
                                                logPath.str()};
  std::string execError;
  int rc = llvm::sys::ExecuteAndWait(*lldPath, argv, std::nullopt, redirects,
                                     0, 0, &execError);
  if (rc != 0) {
    std::string log;
    if (auto buffer = llvm::MemoryBuffer::getFile(logPath))
      log = (*buffer)->getBuffer().str();
    return makeError("ld.lld failed to link the host shared object: " +
                     execError + "\n" + log);
  }
  return llvm::Error::success();
}

/// Links `object` into an ELF shared object and returns its bytes. libc is
/// not linked: undefined references bind when the runtime dlopen()s it.
llvm::Expected<std::string> linkSharedObject(llvm::StringRef object,
                                             const CpuTarget &target) {
  llvm::SmallString<256> tempDir;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("kiln-codegen", tempDir))
    return makeError("cannot create a temporary directory: " + ec.message());
  llvm::SmallString<256> objectPath(tempDir), outputPath(tempDir);
  llvm::sys::path::append(objectPath, "host.o");
  llvm::sys::path::append(outputPath, "host.so");
  llvm::scope_exit cleanup([&] {
    llvm::sys::fs::remove_directories(tempDir, /*IgnoreErrors=*/true);
  });

  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objectPath, ec);
    if (ec)
      return makeError("cannot write " + objectPath + ": " + ec.message());
    os << object;
    os.close();
    if (os.has_error())
      return makeError("cannot write " + objectPath + ": " +
                       os.error().message());
  }

  llvm::SmallVector<std::string> flags =
      linkFlags(objectPath, outputPath, target);
  {
    std::lock_guard<std::mutex> lock(lldMutex);
    if (lldInProcessUsable) {
      bool canRunAgain = true;
      llvm::Error err = linkInProcess(flags, canRunAgain);
      lldInProcessUsable = canRunAgain;
      if (err)
        return std::move(err);
    } else if (llvm::Error err = linkInSubprocess(flags, tempDir)) {
      return std::move(err);
    }
  }

  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> sharedObject =
      llvm::MemoryBuffer::getFile(outputPath, /*IsText=*/false,
                                  /*RequiresNullTerminator=*/false);
  if (!sharedObject)
    return makeError("cannot read the linked " + outputPath + ": " +
                     sharedObject.getError().message());
  return (*sharedObject)->getBuffer().str();
}

} // namespace

llvm::ArrayRef<CpuTarget> kiln::getCpuTargets() {
  // x86-64-v4's tuning prefers 256-bit auto-vectorization (the Skylake-X
  // frequency drop). The CPUs with VNNI and BF16 this variant is for (Zen 4/5,
  // Sapphire Rapids and later) run 512-bit code at full speed, so loops the
  // optimizer vectorizes use the full width too; explicit vector types in the
  // IR keep their width either way.
  static const CpuTarget targets[] = {
      {"x86-64-v4",
       "x86-64-v4",
       "+avx512vnni,+avx512bf16,-prefer-256-bit",
       {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512vnni",
        "avx512bf16", "avx2", "fma", "f16c"}},
      {"x86-64-v3", "x86-64-v3", "", {"avx2", "fma", "f16c"}},
  };
  return targets;
}

const CpuTarget *kiln::lookupCpuTarget(llvm::StringRef name) {
  for (const CpuTarget &target : getCpuTargets())
    if (target.name == name)
      return &target;
  return nullptr;
}

llvm::Expected<HostModule>
kiln::translateForHost(mlir::ModuleOp llvmDialectModule,
                       const CpuTarget &target) {
  HostModule host;
  host.target = target;
  llvm::Expected<std::unique_ptr<llvm::TargetMachine>> machine =
      createTargetMachine(target);
  if (!machine)
    return machine.takeError();
  host.machine = std::move(*machine);
  host.context = std::make_unique<llvm::LLVMContext>();
  llvm::Expected<std::unique_ptr<llvm::Module>> module =
      translate(llvmDialectModule, *host.context, *host.machine);
  if (!module)
    return module.takeError();
  host.module = std::move(*module);
  return host;
}

llvm::Expected<std::string> kiln::compileSharedObject(HostModule host) {
  CpuTarget target = host.target;
  llvm::Expected<std::string> object =
      emitCode(std::move(host), llvm::CodeGenFileType::ObjectFile);
  if (!object)
    return object.takeError();
  return linkSharedObject(*object, target);
}

llvm::Expected<std::string>
kiln::emitSharedObject(mlir::ModuleOp llvmDialectModule,
                       const CpuTarget &target) {
  llvm::Expected<HostModule> host = translateForHost(llvmDialectModule, target);
  if (!host)
    return host.takeError();
  return compileSharedObject(std::move(*host));
}

llvm::Expected<std::string> kiln::emitLLVMIR(mlir::ModuleOp llvmDialectModule,
                                             const CpuTarget &target) {
  llvm::Expected<HostModule> host = translateForHost(llvmDialectModule, target);
  if (!host)
    return host.takeError();
  return emitOptimized(std::move(*host),
                       [](llvm::Module &llvmModule, llvm::TargetMachine &)
                           -> llvm::Expected<std::string> {
                         std::string text;
                         llvm::raw_string_ostream os(text);
                         llvmModule.print(os, nullptr);
                         return text;
                       });
}

llvm::Expected<std::string>
kiln::emitAssembly(mlir::ModuleOp llvmDialectModule, const CpuTarget &target) {
  llvm::Expected<HostModule> host = translateForHost(llvmDialectModule, target);
  if (!host)
    return host.takeError();
  return emitCode(std::move(*host), llvm::CodeGenFileType::AssemblyFile);
}
