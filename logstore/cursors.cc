// Cursor persistence: encode/decode of the cursors file and atomic rewrite.
#include "logstore/cursors.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "core/checksum.h"

namespace kvf::logstore {

namespace {
constexpr std::string_view kMagicLine = "kvferry-cursors 1\n";

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  for (char c : s) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\0') return false;
  }
  return true;
}
}  // namespace

std::string CursorStore::Encode(const std::map<std::string, uint64_t>& cursors) {
  std::string out(kMagicLine);
  char buf[32];
  for (const auto& [name, seq] : cursors) {
    std::snprintf(buf, sizeof(buf), " %llu\n", static_cast<unsigned long long>(seq));
    out += name;
    out += buf;
  }
  std::snprintf(buf, sizeof(buf), "crc32c %08x\n", MaskCrc(Crc32c(out)));
  out += buf;
  return out;
}

Status CursorStore::Decode(std::string_view bytes, std::map<std::string, uint64_t>* out) {
  if (bytes.substr(0, kMagicLine.size()) != kMagicLine) return Corruption("cursors: bad magic line");
  const size_t crc_at = bytes.rfind("crc32c ");
  if (crc_at == std::string_view::npos || crc_at < kMagicLine.size() || bytes.size() != crc_at + 16 ||
      bytes.back() != '\n') {
    return Corruption("cursors: missing checksum line");
  }
  const std::string hex(bytes.substr(crc_at + 7, 8));
  char* end = nullptr;
  const unsigned long want = std::strtoul(hex.c_str(), &end, 16);
  if (end != hex.c_str() + 8 || MaskCrc(Crc32c(bytes.substr(0, crc_at))) != want) {
    return Corruption("cursors: checksum mismatch");
  }
  out->clear();
  std::string_view body = bytes.substr(kMagicLine.size(), crc_at - kMagicLine.size());
  while (!body.empty()) {
    const size_t nl = body.find('\n');
    if (nl == std::string_view::npos) return Corruption("cursors: unterminated line");
    const std::string_view line = body.substr(0, nl);
    body.remove_prefix(nl + 1);
    const size_t sp = line.rfind(' ');
    if (sp == std::string_view::npos || sp == 0) return Corruption("cursors: bad line");
    const std::string num(line.substr(sp + 1));
    errno = 0;
    const unsigned long long v = std::strtoull(num.c_str(), &end, 10);
    if (num.empty() || end != num.c_str() + num.size() || errno != 0) return Corruption("cursors: bad seq");
    (*out)[std::string(line.substr(0, sp))] = v;
  }
  return Status::Ok();
}

Status CursorStore::Load() {
  auto bytes = fs_->ReadWholeFile(dir_ + "/" + kFileName);
  std::lock_guard<std::mutex> l(mu_);
  if (!bytes.ok()) {
    if (bytes.status().sys_errno() == ENOENT) {
      cursors_.clear();
      return Status::Ok();
    }
    return bytes.status();
  }
  return Decode(*bytes, &cursors_);
}

Status CursorStore::Advance(const std::string& dest, uint64_t seq) {
  if (!ValidName(dest)) return InvalidArgument("cursor name must be 1..256 bytes without whitespace");
  std::lock_guard<std::mutex> l(mu_);
  auto [it, added] = cursors_.try_emplace(dest, seq);
  if (added || seq > it->second) {
    it->second = std::max(it->second, seq);
    dirty_ = true;
  }
  return Status::Ok();
}

Status CursorStore::Persist() {
  std::lock_guard<std::mutex> p(persist_mu_);
  std::string bytes;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!dirty_) return Status::Ok();
    bytes = Encode(cursors_);
    dirty_ = false;
  }
  Status s = fs_->WriteFileAtomic(dir_, kFileName, bytes);
  if (!s.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    dirty_ = true;
  }
  return s;
}

std::map<std::string, uint64_t> CursorStore::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return cursors_;
}

uint64_t CursorStore::Min() const {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t m = UINT64_MAX;
  for (const auto& [n, s] : cursors_) m = std::min(m, s);
  return m;
}

}  // namespace kvf::logstore
