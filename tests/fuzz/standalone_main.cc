// A driver for LLVMFuzzerTestOneInput when the compiler has no libFuzzer
// (gcc builds): runs every file named on the command line (or found in a
// named directory), then feeds deterministic mutations of them for
// --seconds=N. It finds crashes only by luck; the clang build fuzzes for real.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  double seconds = 5;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--seconds=", 10) == 0) {
      seconds = std::atof(argv[i] + 10);
      continue;
    }
    std::filesystem::path p(argv[i]);
    auto add = [&](const std::filesystem::path& f) {
      std::ifstream in(f, std::ios::binary);
      inputs.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        if (e.is_regular_file()) add(e.path());
      }
    } else if (std::filesystem::exists(p)) {
      add(p);
    }
  }
  if (inputs.empty()) inputs.emplace_back();
  for (const auto& in : inputs) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  }
  std::mt19937_64 rng(12345);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  uint64_t runs = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    std::string s = inputs[rng() % inputs.size()];
    const int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:
          if (!s.empty()) s[rng() % s.size()] = static_cast<char>(rng());
          break;
        case 1: s.insert(s.empty() ? 0 : rng() % s.size(), 1, static_cast<char>(rng())); break;
        case 2:
          if (!s.empty()) s.erase(rng() % s.size(), 1 + rng() % 16);
          break;
        case 3:
          if (!s.empty()) s.resize(rng() % s.size());
          break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    ++runs;
  }
  std::printf("standalone fuzz driver: %zu seed inputs, %llu mutated runs, no crash\n", inputs.size(),
              static_cast<unsigned long long>(runs));
  return 0;
}
