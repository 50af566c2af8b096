# Helpers every folder uses to declare its library, tests, fuzz targets and
# benchmarks, so that flags and registration live in one place.

# kvf_library(NAME SOURCES ... [DEPS ...] [PUBLIC_DEPS ...])
# A static library whose public headers are included as "<folder>/<file>.h".
function(kvf_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;PUBLIC_DEPS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_link_libraries(${name} PUBLIC ${A_PUBLIC_DEPS} PRIVATE ${A_DEPS})
endfunction()

# kvf_test(NAME SOURCES ... [DEPS ...] [LABELS ...] [RESOURCE_LOCK ...] [TIMEOUT s] [SERIAL])
# A GoogleTest executable; each TEST becomes its own CTest test. SERIAL runs
# its tests alone (live traffic whose timing a parallel test would disturb).
function(kvf_test name)
  cmake_parse_arguments(A "SERIAL" "TIMEOUT" "SOURCES;DEPS;LABELS;RESOURCE_LOCK" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_DEPS} GTest::gtest GTest::gtest_main GTest::gmock Threads::Threads)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 120)
  endif()
  # One variable per property: a ';' inside a property value would be split
  # by gtest_discover_tests.
  set(props TIMEOUT ${A_TIMEOUT} ENVIRONMENT "KVF_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
      ENVIRONMENT_MODIFICATION "KVF_BINARY_DIR=set:${PROJECT_BINARY_DIR}")
  target_compile_definitions(${name} PRIVATE KVF_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                             KVF_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if(A_LABELS)
    list(APPEND props LABELS "${A_LABELS}")
  endif()
  if(A_RESOURCE_LOCK)
    list(APPEND props RESOURCE_LOCK "${A_RESOURCE_LOCK}")
  endif()
  if(A_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${props})
endfunction()

# kvf_fuzz(NAME SOURCE file [DEPS ...] [CORPUS dir] [SMOKE_SECONDS n])
# A libFuzzer target (LLVMFuzzerTestOneInput). With clang it links libFuzzer;
# with gcc it links tests/fuzz/standalone_main.cc, which replays the corpus and
# a deterministic stream of mutated inputs. Either way a short smoke run is
# registered with CTest (label "fuzz").
function(kvf_fuzz name)
  cmake_parse_arguments(A "" "SOURCE;CORPUS;SMOKE_SECONDS" "DEPS" ${ARGN})
  if(NOT A_SMOKE_SECONDS)
    set(A_SMOKE_SECONDS 10)
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    add_executable(${name} ${A_SOURCE})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    set(run_args -max_total_time=${A_SMOKE_SECONDS} -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
  else()
    add_executable(${name} ${A_SOURCE} ${PROJECT_SOURCE_DIR}/tests/fuzz/standalone_main.cc)
    set(run_args --seconds=${A_SMOKE_SECONDS})
  endif()
  target_link_libraries(${name} PRIVATE ${A_DEPS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  set(corpus_args)
  if(A_CORPUS)
    # libFuzzer writes new inputs into the first corpus dir: give it a scratch
    # copy so the checked-in seeds stay as they are.
    set(scratch ${CMAKE_CURRENT_BINARY_DIR}/${name}_corpus)
    set(corpus_args ${scratch} ${A_CORPUS})
    file(MAKE_DIRECTORY ${scratch})
  endif()
  add_test(NAME fuzz_smoke.${name} COMMAND ${name} ${run_args} ${corpus_args})
  set_tests_properties(fuzz_smoke.${name} PROPERTIES LABELS fuzz TIMEOUT 300)
endfunction()

# kvf_benchmark(NAME SOURCES ... [DEPS ...])
# A Google Benchmark executable. Not run by CTest: bench/run.sh runs them.
function(kvf_benchmark name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_link_libraries(${name} PRIVATE ${A_DEPS} benchmark::benchmark Threads::Threads)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
endfunction()

# kvf_subdirs(): adds every immediate subfolder that has a CMakeLists.txt, so
# each module's tests and benchmarks live in a folder of their own.
function(kvf_subdirs)
  file(GLOB children LIST_DIRECTORIES true RELATIVE ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR}/*)
  list(SORT children)
  foreach(child ${children})
    if(IS_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/${child} AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${child}/CMakeLists.txt)
      add_subdirectory(${child})
    endif()
  endforeach()
endfunction()
