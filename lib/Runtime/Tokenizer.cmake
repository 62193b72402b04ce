# The runtime's tokenizer: plain C++17, links nothing of MLIR or LLVM.
# Included from lib/Runtime/CMakeLists.txt; the runtime library links it.
add_library(KilnTokenizer STATIC
  ${CMAKE_CURRENT_LIST_DIR}/Tokenizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/Unicode.cpp
  ${CMAKE_CURRENT_LIST_DIR}/WordPiece.cpp
)
# The parent of lib/Runtime, so "Runtime/Tokenizer.h" resolves in the main
# build and in lib/Runtime/standalone alike.
target_include_directories(KilnTokenizer PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..)
# nlohmann::json reports malformed vocabularies by throwing; fromJSON catches
# them and returns the message, so nothing escapes the library.
target_compile_options(KilnTokenizer PRIVATE -fexceptions)
set_target_properties(KilnTokenizer PROPERTIES POSITION_INDEPENDENT_CODE ON)
