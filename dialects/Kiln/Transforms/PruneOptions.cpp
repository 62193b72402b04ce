//===- PruneOptions.cpp - what kiln-prune is asked to do ------------------===//

#include "Kiln/Transforms/PruneOptions.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <cmath>
#include <cstdio>

namespace kiln {

static llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

bool parsePrunePattern(llvm::StringRef name, PrunePattern &pattern) {
  if (name == "unstructured")
    pattern = PrunePattern::Unstructured;
  else if (name == "nm")
    pattern = PrunePattern::NM;
  else if (name == "block")
    pattern = PrunePattern::Block;
  else
    return false;
  return true;
}

bool parsePruneCriterion(llvm::StringRef name, PruneCriterion &criterion) {
  if (name == "magnitude")
    criterion = PruneCriterion::Magnitude;
  else if (name == "wanda")
    criterion = PruneCriterion::Wanda;
  else if (name == "sparsegpt")
    criterion = PruneCriterion::SparseGPT;
  else
    return false;
  return true;
}

bool parseBlockShape(llvm::StringRef text, unsigned &rows, unsigned &cols) {
  auto [r, c] = text.split('x');
  return !r.getAsInteger(10, rows) && !c.getAsInteger(10, cols) && rows > 0 &&
         cols > 0;
}

llvm::Error PruneOptions::validate() const {
  if (!(rate >= 0 && rate < 1)) {
    char text[32];
    std::snprintf(text, sizeof(text), "%g", rate);
    return fail("prune: rate=" + llvm::Twine(text) +
                " is out of range [0, 1)");
  }
  if (pattern == PrunePattern::NM && (m < 2 || n == 0 || n >= m))
    return fail("prune: " + llvm::Twine(n) + ":" + llvm::Twine(m) +
                " sparsity needs 0 < n < m");
  if (pattern == PrunePattern::Block && (blockRows == 0 || blockCols == 0))
    return fail("prune: block sizes must be positive");
  if (criterion != PruneCriterion::Magnitude && calibration.empty())
    return fail(llvm::Twine("prune: criterion=") +
                (criterion == PruneCriterion::Wanda ? "wanda" : "sparsegpt") +
                " needs calibration=<statistics file>");
  // SparseGPT compensates column by column; a block spans several rows.
  if (criterion == PruneCriterion::SparseGPT &&
      pattern == PrunePattern::Block)
    return fail("prune: criterion=sparsegpt prunes pattern=unstructured or "
                "nm, not block");
  return llvm::Error::success();
}

llvm::Error PruneOptions::validateShape(int64_t rows, int64_t k) const {
  if (pattern == PrunePattern::NM && k % m != 0)
    return fail("prune: " + llvm::Twine(n) + ":" + llvm::Twine(m) +
                " needs K = " + llvm::Twine(k) + " to be a multiple of " +
                llvm::Twine(m));
  if (pattern == PrunePattern::Block &&
      (rows % blockRows != 0 || k % blockCols != 0))
    return fail("prune: block=" + llvm::Twine(blockRows) + "x" +
                llvm::Twine(blockCols) + " does not tile a weight of " +
                llvm::Twine(rows) + "x" + llvm::Twine(k));
  return llvm::Error::success();
}

llvm::Expected<PruneOptions> parsePruneOptions(llvm::StringRef text) {
  PruneOptions options;
  llvm::SmallVector<llvm::StringRef> items;
  text.split(items, ',', /*MaxSplit=*/-1, /*KeepEmpty=*/false);
  for (llvm::StringRef item : items) {
    auto [key, value] = item.trim().split('=');
    bool ok = true;
    if (key == "pattern") {
      ok = parsePrunePattern(value, options.pattern);
    } else if (key == "rate") {
      ok = !value.getAsDouble(options.rate) && std::isfinite(options.rate);
    } else if (key == "n") {
      ok = !value.getAsInteger(10, options.n);
    } else if (key == "m") {
      ok = !value.getAsInteger(10, options.m);
    } else if (key == "block") {
      ok = parseBlockShape(value, options.blockRows, options.blockCols);
    } else if (key == "criterion") {
      ok = parsePruneCriterion(value, options.criterion);
    } else if (key == "calibration") {
      options.calibration = value.str();
      ok = !value.empty();
    } else {
      return fail("prune: unknown option '" + item +
                  "' (known: pattern=unstructured|nm|block, rate=R, n=N, "
                  "m=M, block=RxC, criterion=magnitude|wanda|sparsegpt, "
                  "calibration=FILE)");
    }
    if (!ok)
      return fail("prune: invalid option '" + item + "'");
  }
  if (llvm::Error e = options.validate())
    return std::move(e);
  return options;
}

} // namespace kiln
