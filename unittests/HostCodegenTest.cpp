//===- HostCodegenTest.cpp - LLVM-dialect module to a loadable .so --------===//
//
// Lowers a small vector kernel with the upstream MLIR pipeline, compiles it
// with kiln::emitSharedObject for each CPU variant, dlopen()s the result and
// checks the numbers against a scalar C++ reference.
//
//===----------------------------------------------------------------------===//

#include "Compiler/HostCodegen.h"
#include "kiln/runtime/HostABI.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/BinaryFormat/ELF.h"
#include "llvm/Object/ELFObjectFile.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/TargetParser/Host.h"

#include "gtest/gtest.h"

#include <cmath>
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace {

// y[i] = a * x[i] + exp(y[i]): a vector<16xf32> main loop and a scalar tail,
// plus two kernels whose lowering calls memcpy and memset.
constexpr const char *kKernels = R"mlir(
func.func @axpy(%a: f32, %x: memref<?xf32>, %y: memref<?xf32>)
    attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %n = memref.dim %x, %c0 : memref<?xf32>
  %rem = arith.remui %n, %c16 : index
  %nv = arith.subi %n, %rem : index
  %va = vector.broadcast %a : f32 to vector<16xf32>
  scf.for %i = %c0 to %nv step %c16 {
    %vx = vector.load %x[%i] : memref<?xf32>, vector<16xf32>
    %vy = vector.load %y[%i] : memref<?xf32>, vector<16xf32>
    %e = math.exp %vy : vector<16xf32>
    %p = arith.mulf %va, %vx : vector<16xf32>
    %r = arith.addf %p, %e : vector<16xf32>
    vector.store %r, %y[%i] : memref<?xf32>, vector<16xf32>
  }
  scf.for %i = %nv to %n step %c1 {
    %sx = memref.load %x[%i] : memref<?xf32>
    %sy = memref.load %y[%i] : memref<?xf32>
    %e = math.exp %sy : f32
    %p = arith.mulf %a, %sx : f32
    %r = arith.addf %p, %e : f32
    memref.store %r, %y[%i] : memref<?xf32>
  }
  return
}

func.func @copy(%src: memref<?xf32>, %dst: memref<?xf32>)
    attributes {llvm.emit_c_interface} {
  memref.copy %src, %dst : memref<?xf32> to memref<?xf32>
  return
}

func.func @zero(%x: memref<?xf32>) attributes {llvm.emit_c_interface} {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %z = arith.constant 0.0 : f32
  %n = memref.dim %x, %c0 : memref<?xf32>
  scf.for %i = %c0 to %n step %c1 {
    memref.store %z, %x[%i] : memref<?xf32>
  }
  return
}
)mlir";

using AxpyFn = void (*)(float, KilnMemRef1D *, KilnMemRef1D *);
using CopyFn = void (*)(KilnMemRef1D *, KilnMemRef1D *);
using ZeroFn = void (*)(KilnMemRef1D *);

KilnMemRef1D describe(std::vector<float> &data) {
  KilnMemRef1D desc;
  desc.allocated = data.data();
  desc.aligned = data.data();
  desc.offset = 0;
  desc.sizes[0] = static_cast<int64_t>(data.size());
  desc.strides[0] = 1;
  return desc;
}

/// The features of `target` this CPU lacks, empty if it can run the code.
std::string missingFeatures(const kiln::CpuTarget &target) {
  llvm::StringMap<bool> host = llvm::sys::getHostCPUFeatures();
  std::string missing;
  for (const std::string &feature : target.runtimeFeatures)
    if (!host.lookup(feature))
      missing += (missing.empty() ? "" : ",") + feature;
  return missing;
}

/// A shared object loaded from memory through a memfd, unloaded on scope exit.
class LoadedObject {
public:
  explicit LoadedObject(const std::string &bytes) {
    fd = memfd_create("kiln-host-test", MFD_CLOEXEC);
    if (fd < 0) {
      error = "memfd_create failed";
      return;
    }
    if (write(fd, bytes.data(), bytes.size()) !=
        static_cast<ssize_t>(bytes.size())) {
      error = "write to memfd failed";
      return;
    }
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    // RTLD_NOW: every undefined symbol (expf, memcpy, ...) must bind now.
    handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle)
      error = dlerror();
  }
  ~LoadedObject() {
    if (handle)
      dlclose(handle);
    if (fd >= 0)
      close(fd);
  }
  template <typename Fn> Fn lookup(const char *name) {
    return reinterpret_cast<Fn>(dlsym(handle, name));
  }

  void *handle = nullptr;
  int fd = -1;
  std::string error;
};

class HostCodegenTest : public ::testing::Test {
protected:
  void SetUp() override {
    context.loadDialect<mlir::arith::ArithDialect, mlir::cf::ControlFlowDialect,
                        mlir::func::FuncDialect, mlir::LLVM::LLVMDialect,
                        mlir::math::MathDialect, mlir::memref::MemRefDialect,
                        mlir::scf::SCFDialect, mlir::vector::VectorDialect>();
    context.printOpOnDiagnostic(false);
  }

  mlir::OwningOpRef<mlir::ModuleOp> parse(const char *source) {
    return mlir::parseSourceString<mlir::ModuleOp>(source, &context);
  }

  /// Parses `source` and lowers it to the LLVM dialect with the upstream
  /// pipeline the CPU lowering ends with.
  mlir::OwningOpRef<mlir::ModuleOp> parseLowered(const char *source) {
    mlir::OwningOpRef<mlir::ModuleOp> module = parse(source);
    if (!module)
      return nullptr;
    static bool registered = [] {
      mlir::registerSCFToControlFlowPass();
      mlir::registerConvertVectorToLLVMPass();
      mlir::registerConvertMathToLLVMPass();
      mlir::registerArithToLLVMConversionPass();
      mlir::registerFinalizeMemRefToLLVMConversionPass();
      mlir::registerConvertFuncToLLVMPass();
      mlir::registerConvertControlFlowToLLVMPass();
      mlir::registerReconcileUnrealizedCastsPass();
      return true;
    }();
    (void)registered;
    mlir::PassManager pm(&context);
    if (mlir::failed(mlir::parsePassPipeline(
            "convert-scf-to-cf, convert-vector-to-llvm, "
            "convert-math-to-llvm, convert-arith-to-llvm, "
            "finalize-memref-to-llvm, convert-func-to-llvm, "
            "convert-cf-to-llvm, reconcile-unrealized-casts",
            pm)) ||
        mlir::failed(pm.run(*module)))
      return nullptr;
    return module;
  }

  mlir::MLIRContext context;
};

TEST(HostCodegenTargets, LookupByName) {
  ASSERT_EQ(kiln::getCpuTargets().size(), 2u);
  const kiln::CpuTarget *v4 = kiln::lookupCpuTarget("x86-64-v4");
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ(v4->cpu, "x86-64-v4");
  EXPECT_NE(llvm::find(v4->runtimeFeatures, "avx512vnni"),
            v4->runtimeFeatures.end());
  EXPECT_NE(llvm::find(v4->runtimeFeatures, "avx512bf16"),
            v4->runtimeFeatures.end());
  const kiln::CpuTarget *v3 = kiln::lookupCpuTarget("x86-64-v3");
  ASSERT_NE(v3, nullptr);
  EXPECT_EQ(llvm::find(v3->runtimeFeatures, "avx512f"),
            v3->runtimeFeatures.end());
  EXPECT_EQ(kiln::lookupCpuTarget("x86-64-v5"), nullptr);
  EXPECT_EQ(kiln::lookupCpuTarget(""), nullptr);
}

// Emits, loads and runs the kernels for one variant.
class HostCodegenRunTest
    : public HostCodegenTest,
      public ::testing::WithParamInterface<const char *> {};

TEST_P(HostCodegenRunTest, AxpyMatchesScalarReference) {
  const kiln::CpuTarget *target = kiln::lookupCpuTarget(GetParam());
  ASSERT_NE(target, nullptr);
  mlir::OwningOpRef<mlir::ModuleOp> module = parseLowered(kKernels);
  ASSERT_TRUE(module) << "upstream lowering to the LLVM dialect failed";

  // Emitting needs no particular CPU: always check it.
  llvm::Expected<std::string> so = kiln::emitSharedObject(*module, *target);
  ASSERT_TRUE(static_cast<bool>(so)) << llvm::toString(so.takeError());
  ASSERT_GT(so->size(), 4u);
  EXPECT_EQ(so->substr(0, 4), "\x7f"
                              "ELF");

  std::string missing = missingFeatures(*target);
  if (!missing.empty())
    GTEST_SKIP() << "NOT RUN: this CPU lacks " << missing << " needed by "
                 << target->name << "; the " << target->name
                 << " code was emitted but not executed";

  LoadedObject object(*so);
  ASSERT_NE(object.handle, nullptr) << "dlopen failed: " << object.error;
  auto axpy = object.lookup<AxpyFn>("_mlir_ciface_axpy");
  auto copy = object.lookup<CopyFn>("_mlir_ciface_copy");
  auto zero = object.lookup<ZeroFn>("_mlir_ciface_zero");
  ASSERT_NE(axpy, nullptr);
  ASSERT_NE(copy, nullptr);
  ASSERT_NE(zero, nullptr);

  // 1000 + 7 elements: 62 vector iterations and a scalar tail of 7.
  const size_t n = 1007;
  const float a = 1.75f;
  std::vector<float> x(n), y(n), expected(n);
  for (size_t i = 0; i < n; ++i) {
    x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
    y[i] = std::cos(0.11f * static_cast<float>(i)) * 4.0f - 1.0f;
    expected[i] = a * x[i] + std::exp(y[i]);
  }
  KilnMemRef1D xDesc = describe(x), yDesc = describe(y);
  axpy(a, &xDesc, &yDesc);
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    double rel = std::fabs(static_cast<double>(y[i]) - expected[i]) /
                 std::max(std::fabs(static_cast<double>(expected[i])), 1e-6);
    worst = std::max(worst, rel);
    ASSERT_LE(rel, 1e-5) << "element " << i << ": got " << y[i]
                         << ", expected " << expected[i];
  }
  std::printf("[ %s ] axpy over %zu elements, worst relative error %.3g\n",
              target->name.c_str(), n, worst);

  // memcpy and memset come from the process's libc at dlopen time.
  std::vector<float> copied(n, -1.0f);
  KilnMemRef1D copiedDesc = describe(copied);
  copy(&yDesc, &copiedDesc);
  EXPECT_EQ(copied, y);
  zero(&copiedDesc);
  EXPECT_EQ(copied, std::vector<float>(n, 0.0f));
}

INSTANTIATE_TEST_SUITE_P(Variants, HostCodegenRunTest,
                         ::testing::Values("x86-64-v4", "x86-64-v3"),
                         [](const ::testing::TestParamInfo<const char *> &info) {
                           // "x86-64-v4" -> "v4"
                           return std::string(info.param).substr(7);
                         });

// The .so links no libc: libm/libc calls stay undefined dynamic symbols and
// there is no DT_NEEDED entry; the entry points are exported.
TEST_F(HostCodegenTest, SharedObjectLeavesLibcCallsUndefined) {
  mlir::OwningOpRef<mlir::ModuleOp> module = parseLowered(kKernels);
  ASSERT_TRUE(module);
  llvm::Expected<std::string> so =
      kiln::emitSharedObject(*module, *kiln::lookupCpuTarget("x86-64-v3"));
  ASSERT_TRUE(static_cast<bool>(so)) << llvm::toString(so.takeError());

  auto file = llvm::object::ObjectFile::createObjectFile(
      llvm::MemoryBufferRef(*so, "host.so"));
  ASSERT_TRUE(static_cast<bool>(file)) << llvm::toString(file.takeError());
  auto *elf = llvm::dyn_cast<llvm::object::ELF64LEObjectFile>(file->get());
  ASSERT_NE(elf, nullptr);
  EXPECT_EQ(elf->getELFFile().getHeader().e_type, llvm::ELF::ET_DYN);
  EXPECT_EQ(elf->getELFFile().getHeader().e_machine, llvm::ELF::EM_X86_64);

  llvm::StringSet<> defined, undefined;
  for (const llvm::object::ELFSymbolRef &symbol :
       elf->getDynamicSymbolIterators()) {
    llvm::Expected<llvm::StringRef> name = symbol.getName();
    ASSERT_TRUE(static_cast<bool>(name)) << llvm::toString(name.takeError());
    llvm::Expected<uint32_t> flags = symbol.getFlags();
    ASSERT_TRUE(static_cast<bool>(flags)) << llvm::toString(flags.takeError());
    if (name->empty())
      continue;
    (*flags & llvm::object::SymbolRef::SF_Undefined ? undefined : defined)
        .insert(*name);
  }
  for (const char *entry :
       {"_mlir_ciface_axpy", "_mlir_ciface_copy", "_mlir_ciface_zero"})
    EXPECT_TRUE(defined.contains(entry)) << entry << " is not exported";
  for (const char *libcCall : {"expf", "memcpy", "memset"})
    EXPECT_TRUE(undefined.contains(libcCall))
        << libcCall << " is not an undefined dynamic symbol";

  auto dynamic = elf->getELFFile().dynamicEntries();
  ASSERT_TRUE(static_cast<bool>(dynamic)) << llvm::toString(dynamic.takeError());
  for (const auto &entry : *dynamic)
    EXPECT_NE(entry.getTag(), llvm::ELF::DT_NEEDED)
        << "the host object must not depend on other shared objects";
  bool bindNow = false;
  for (const auto &entry : *dynamic)
    if (entry.getTag() == llvm::ELF::DT_FLAGS)
      bindNow |= (entry.getVal() & llvm::ELF::DF_BIND_NOW) != 0;
  EXPECT_TRUE(bindNow) << "linked without -z now";
}

// Two variants per compile: lld runs several times in one process and gives
// the same bytes for the same input.
TEST_F(HostCodegenTest, RepeatedLinksInOneProcess) {
  mlir::OwningOpRef<mlir::ModuleOp> module = parseLowered(kKernels);
  ASSERT_TRUE(module);
  std::vector<std::string> objects;
  for (const char *name : {"x86-64-v4", "x86-64-v3", "x86-64-v4"}) {
    llvm::Expected<std::string> so =
        kiln::emitSharedObject(*module, *kiln::lookupCpuTarget(name));
    ASSERT_TRUE(static_cast<bool>(so)) << llvm::toString(so.takeError());
    objects.push_back(std::move(*so));
  }
  EXPECT_EQ(objects[0], objects[2]);
  EXPECT_NE(objects[0], objects[1]);
}

TEST_F(HostCodegenTest, AssemblyUsesTheVariantsRegisters) {
  mlir::OwningOpRef<mlir::ModuleOp> module = parseLowered(kKernels);
  ASSERT_TRUE(module);
  llvm::Expected<std::string> v4 =
      kiln::emitAssembly(*module, *kiln::lookupCpuTarget("x86-64-v4"));
  ASSERT_TRUE(static_cast<bool>(v4)) << llvm::toString(v4.takeError());
  EXPECT_NE(v4->find("zmm"), std::string::npos)
      << "no 512-bit registers in the x86-64-v4 code";

  llvm::Expected<std::string> v3 =
      kiln::emitAssembly(*module, *kiln::lookupCpuTarget("x86-64-v3"));
  ASSERT_TRUE(static_cast<bool>(v3)) << llvm::toString(v3.takeError());
  EXPECT_NE(v3->find("ymm"), std::string::npos)
      << "no 256-bit registers in the x86-64-v3 code";
  EXPECT_EQ(v3->find("zmm"), std::string::npos)
      << "512-bit registers in the x86-64-v3 code";
}

TEST_F(HostCodegenTest, LLVMIRNamesTheVariant) {
  mlir::OwningOpRef<mlir::ModuleOp> module = parseLowered(kKernels);
  ASSERT_TRUE(module);
  llvm::Expected<std::string> ir =
      kiln::emitLLVMIR(*module, *kiln::lookupCpuTarget("x86-64-v4"));
  ASSERT_TRUE(static_cast<bool>(ir)) << llvm::toString(ir.takeError());
  EXPECT_NE(ir->find("define void @_mlir_ciface_axpy"), std::string::npos);
  EXPECT_NE(ir->find("target triple = \"x86_64-unknown-linux-gnu\""),
            std::string::npos);
  EXPECT_NE(ir->find("\"target-cpu\"=\"x86-64-v4\""), std::string::npos);
}

// A module the lowering left unfinished is an error that names the op.
TEST_F(HostCodegenTest, UnloweredModuleIsAnError) {
  mlir::OwningOpRef<mlir::ModuleOp> module = parse(kKernels);
  ASSERT_TRUE(module);
  const kiln::CpuTarget &v3 = *kiln::lookupCpuTarget("x86-64-v3");

  llvm::Expected<std::string> so = kiln::emitSharedObject(*module, v3);
  ASSERT_FALSE(static_cast<bool>(so));
  std::string message = llvm::toString(so.takeError());
  EXPECT_NE(message.find("func.func"), std::string::npos) << message;
  EXPECT_NE(message.find("not in the LLVM dialect"), std::string::npos)
      << message;

  llvm::Expected<std::string> ir = kiln::emitLLVMIR(*module, v3);
  EXPECT_FALSE(static_cast<bool>(ir));
  llvm::consumeError(ir.takeError());
  llvm::Expected<std::string> assembly = kiln::emitAssembly(*module, v3);
  EXPECT_FALSE(static_cast<bool>(assembly));
  llvm::consumeError(assembly.takeError());
}

} // namespace
