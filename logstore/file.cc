// POSIX, io_uring and in-memory implementations of the file interface.
// -errno is turned into a Status here, at the syscall/liburing boundary, and
// nowhere else in the log.
#include "logstore/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kvf::logstore {

// ---- helpers shared by every implementation ----

Status FileSystem::WriteFileAtomic(const std::string& dir, const std::string& name, std::string_view data) {
  const std::string tmp = dir + "/" + name + ".tmp";
  auto f = OpenWritable(tmp, WritableOptions{});
  if (!f.ok()) return f.status();
  KVF_RETURN_IF_ERROR((*f)->AppendAndSync(AsBytes(data)));
  KVF_RETURN_IF_ERROR((*f)->Close());
  KVF_RETURN_IF_ERROR(Rename(tmp, dir + "/" + name));
  return SyncDir(dir);
}

Result<std::string> FileSystem::ReadWholeFile(const std::string& path) {
  auto f = OpenReadable(path);
  if (!f.ok()) return f.status();
  auto size = (*f)->Size();
  if (!size.ok()) return size.status();
  std::string out(static_cast<size_t>(*size), '\0');
  auto n = (*f)->Read(0, out.size(), reinterpret_cast<uint8_t*>(out.data()));
  if (!n.ok()) return n.status();
  out.resize(*n);
  return out;
}

namespace {

// ---- POSIX ----

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path, uint64_t offset)
      : fd_(fd), path_(std::move(path)), offset_(offset) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(ByteSpan data) override {
    size_t done = 0;
    while (done < data.size()) {
      iovec iov{const_cast<uint8_t*>(data.data() + done), data.size() - done};
      const ssize_t n = ::pwritev(fd_, &iov, 1, static_cast<off_t>(offset_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "pwritev " + path_);
      }
      if (n == 0) return Status(StatusCode::kIoError, "pwritev wrote nothing: " + path_, EIO);
      done += static_cast<size_t>(n);
      offset_ += static_cast<uint64_t>(n);
    }
    return Status::Ok();
  }
  Status Sync() override {
    if (::fdatasync(fd_) != 0) return Status::FromErrno(errno, "fdatasync " + path_);
    return Status::Ok();
  }
  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    const int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return Status::FromErrno(errno, "close " + path_);
    return Status::Ok();
  }
  uint64_t offset() const override { return offset_; }
  void Rewind(uint64_t bytes) override { offset_ -= bytes; }

 protected:
  int fd_;
  std::string path_;
  uint64_t offset_;
};

// io_uring: a small ring per open file. Writes and the covering fdatasync go
// in one submission, linked. The fd is deliberately not registered: a
// registered file stays referenced until the ring's asynchronous teardown,
// so a deleted segment's space would come back late (seen on tmpfs).
class UringWritableFile : public PosixWritableFile {
 public:
  UringWritableFile(int fd, std::string path, uint64_t offset, io_uring ring)
      : PosixWritableFile(fd, std::move(path), offset), ring_(ring) {}
  ~UringWritableFile() override { io_uring_queue_exit(&ring_); }

  Status Append(ByteSpan data) override { return Submit(data, /*sync=*/false); }
  Status Sync() override { return Submit({}, /*sync=*/true); }
  Status AppendAndSync(ByteSpan data) override { return Submit(data, /*sync=*/true); }

 private:
  static constexpr uint64_t kWriteTag = 1;
  static constexpr uint64_t kSyncTag = 2;
  static constexpr size_t kMaxWrite = 1u << 30;

  // Writes `data` (requeueing short writes) and, if `sync`, fdatasyncs.
  Status Submit(ByteSpan data, bool sync) {
    size_t done = 0;
    bool synced = !sync;
    while (done < data.size() || !synced) {
      unsigned want = 0;
      size_t len = 0;
      if (done < data.size()) {
        len = std::min(data.size() - done, kMaxWrite);
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        io_uring_prep_write(sqe, fd_, data.data() + done, static_cast<unsigned>(len), offset_);
        sqe->user_data = kWriteTag;
        // Only the last write of the request carries the fsync link.
        if (!synced && done + len == data.size()) sqe->flags |= IOSQE_IO_LINK;
        ++want;
      }
      if (!synced && (done + len == data.size())) {
        io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
        io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
        sqe->user_data = kSyncTag;
        ++want;
      }
      int rc;
      do {
        rc = io_uring_submit_and_wait(&ring_, want);
      } while (rc == -EINTR);
      if (rc < 0) return Status::FromErrno(rc, "io_uring_submit " + path_);
      Status err;
      for (unsigned i = 0; i < want; ++i) {
        io_uring_cqe* cqe = nullptr;
        do {
          rc = io_uring_wait_cqe(&ring_, &cqe);
        } while (rc == -EINTR);
        if (rc < 0) return Status::FromErrno(rc, "io_uring_wait_cqe " + path_);
        const int res = cqe->res;
        const uint64_t tag = cqe->user_data;
        io_uring_cqe_seen(&ring_, cqe);
        if (tag == kWriteTag) {
          if (res < 0) {
            if (err.ok()) err = Status::FromErrno(res, "io_uring write " + path_);
          } else if (res == 0) {
            if (err.ok()) err = Status(StatusCode::kIoError, "io_uring write wrote nothing: " + path_, EIO);
          } else {
            done += static_cast<size_t>(res);  // a short write is requeued by the loop
            offset_ += static_cast<uint64_t>(res);
          }
        } else if (res == -ECANCELED) {
          // The linked write was short: the loop writes the rest and syncs again.
        } else if (res < 0) {
          if (err.ok()) err = Status::FromErrno(res, "io_uring fdatasync " + path_);
        } else {
          synced = true;
        }
      }
      if (!err.ok()) return err;
    }
    return Status::Ok();
  }

  io_uring ring_;
};

class PosixReadableFile : public RandomAccessFile {
 public:
  PosixReadableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixReadableFile() override { ::close(fd_); }
  Result<size_t> Read(uint64_t offset, size_t n, uint8_t* dst) const override {
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "pread " + path_);
      }
      if (r == 0) break;
      done += static_cast<size_t>(r);
    }
    return done;
  }
  Result<uint64_t> Size() const override {
    struct stat st;
    if (::fstat(fd_, &st) != 0) return Status::FromErrno(errno, "fstat " + path_);
    return static_cast<uint64_t>(st.st_size);
  }

 private:
  int fd_;
  std::string path_;
};

class PosixFileSystem : public FileSystem {
 public:
  explicit PosixFileSystem(bool uring) : uring_(uring) {}

  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                     const WritableOptions& opts) override {
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
    if (opts.truncate) flags |= O_TRUNC;
    const int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) return Status::FromErrno(errno, "open " + path);
    if (opts.preallocate > 0 && ::fallocate(fd, 0, 0, static_cast<off_t>(opts.preallocate)) != 0 &&
        errno != EOPNOTSUPP) {
      const int err = errno;
      ::close(fd);
      return Status::FromErrno(err, "fallocate " + path);
    }
    if (!uring_) return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path, opts.start_offset));
    io_uring ring;
    int rc = io_uring_queue_init(8, &ring, 0);
    if (rc < 0) {
      ::close(fd);
      return Status::FromErrno(rc, "io_uring_queue_init");
    }
    return std::unique_ptr<WritableFile>(new UringWritableFile(fd, path, opts.start_offset, ring));
  }

  Result<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open " + path);
    return std::unique_ptr<RandomAccessFile>(new PosixReadableFile(fd, path));
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Status::FromErrno(errno, "opendir " + dir);
    std::vector<std::string> out;
    while (dirent* e = ::readdir(d)) {
      std::string_view n(e->d_name);
      if (n != "." && n != "..") out.emplace_back(n);
    }
    ::closedir(d);
    return out;
  }
  Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return Status::FromErrno(errno, "mkdir " + dir);
    return Status::Ok();
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Status::FromErrno(errno, "rename " + from);
    return Status::Ok();
  }
  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Status::FromErrno(errno, "unlink " + path);
    return Status::Ok();
  }
  Status Truncate(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
      return Status::FromErrno(errno, "truncate " + path);
    }
    return Status::Ok();
  }
  Result<uint64_t> AllocatedBytes(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  Status SyncDir(const std::string& dir) override {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open dir " + dir);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return Status::FromErrno(err, "fsync dir " + dir);
    return Status::Ok();
  }
  std::string_view backend_name() const override { return uring_ ? "io_uring" : "pwritev"; }

 private:
  bool uring_;
};

}  // namespace

UringProbe ProbeUring() {
  UringProbe out;
  io_uring ring;
  const int rc = io_uring_queue_init(4, &ring, 0);
  if (rc < 0) {
    out.detail = std::string("io_uring_setup failed (") + std::strerror(-rc) +
                 "): kernel without io_uring, or disabled by kernel.io_uring_disabled / seccomp";
    return out;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (probe == nullptr) {
    io_uring_queue_exit(&ring);
    out.detail = "io_uring has no IORING_REGISTER_PROBE (kernel older than 5.6)";
    return out;
  }
  std::string missing;
  if (!io_uring_opcode_supported(probe, IORING_OP_WRITE)) missing += " IORING_OP_WRITE";
  if (!io_uring_opcode_supported(probe, IORING_OP_FSYNC)) missing += " IORING_OP_FSYNC";
  io_uring_free_probe(probe);
  const unsigned features = ring.features;
  io_uring_queue_exit(&ring);
  if (!missing.empty()) {
    out.detail = "io_uring lacks opcodes:" + missing;
    return out;
  }
  out.available = true;
  out.detail = "io_uring: WRITE+FSYNC";
  if (features & IORING_FEAT_NODROP) out.detail += " NODROP";
  if (features & IORING_FEAT_SUBMIT_STABLE) out.detail += " SUBMIT_STABLE";
  if (features & IORING_FEAT_FAST_POLL) out.detail += " FAST_POLL";
  return out;
}

Result<std::unique_ptr<FileSystem>> NewPosixFileSystem(IoBackend backend) {
  bool uring = false;
  if (backend != IoBackend::kPosix) {
    const UringProbe probe = ProbeUring();
    if (!probe.available && backend == IoBackend::kUring) return Unsupported(probe.detail);
    uring = probe.available;
  }
  return std::unique_ptr<FileSystem>(new PosixFileSystem(uring));
}

// ---- in memory ----

class MemWritableFile : public WritableFile {
 public:
  MemWritableFile(MemFileSystem* fs, std::shared_ptr<MemFileSystem::File> f, uint64_t offset)
      : fs_(fs), f_(std::move(f)), offset_(offset) {}
  Status Append(ByteSpan data) override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    const uint64_t end = offset_ + data.size();
    if (end > f_->data.size()) {
      if (fs_->TotalBytesLocked() + (end - f_->data.size()) > fs_->capacity_) {
        return Status::FromErrno(ENOSPC, "memfs append");
      }
      f_->data.resize(end);
    }
    std::memcpy(f_->data.data() + offset_, data.data(), data.size());
    offset_ = end;
    return Status::Ok();
  }
  Status Sync() override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    if (fs_->sync_error_ != 0) return Status::FromErrno(fs_->sync_error_, "memfs sync");
    f_->durable = f_->data;
    return Status::Ok();
  }
  Status Close() override { return Status::Ok(); }
  uint64_t offset() const override { return offset_; }
  void Rewind(uint64_t bytes) override { offset_ -= bytes; }

 private:
  MemFileSystem* fs_;
  std::shared_ptr<MemFileSystem::File> f_;
  uint64_t offset_;
};

class MemReadableFile : public RandomAccessFile {
 public:
  MemReadableFile(MemFileSystem* fs, std::shared_ptr<MemFileSystem::File> f) : fs_(fs), f_(std::move(f)) {}
  Result<size_t> Read(uint64_t offset, size_t n, uint8_t* dst) const override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    if (offset >= f_->data.size()) return size_t{0};
    const size_t k = std::min<uint64_t>(n, f_->data.size() - offset);
    std::memcpy(dst, f_->data.data() + offset, k);
    return k;
  }
  Result<uint64_t> Size() const override {
    std::lock_guard<std::mutex> l(fs_->mu_);
    return static_cast<uint64_t>(f_->data.size());
  }

 private:
  MemFileSystem* fs_;
  std::shared_ptr<MemFileSystem::File> f_;
};

uint64_t MemFileSystem::TotalBytesLocked() const {
  uint64_t n = 0;
  for (const auto& [name, f] : files_) n += f->data.size();
  return n;
}

Result<std::unique_ptr<WritableFile>> MemFileSystem::OpenWritable(const std::string& path,
                                                                  const WritableOptions& opts) {
  std::lock_guard<std::mutex> l(mu_);
  auto& f = files_[path];
  if (!f) f = std::make_shared<File>();
  if (opts.truncate) {
    f->data.clear();
    f->durable.clear();
  }
  if (opts.preallocate > f->data.size()) {
    if (TotalBytesLocked() + (opts.preallocate - f->data.size()) > capacity_) {
      return Status::FromErrno(ENOSPC, "memfs fallocate " + path);
    }
    f->data.resize(opts.preallocate, '\0');
    if (f->durable.size() < opts.preallocate) f->durable.resize(opts.preallocate, '\0');
  }
  return std::unique_ptr<WritableFile>(new MemWritableFile(this, f, opts.start_offset));
}

Result<std::unique_ptr<RandomAccessFile>> MemFileSystem::OpenReadable(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::FromErrno(ENOENT, "memfs open " + path);
  return std::unique_ptr<RandomAccessFile>(new MemReadableFile(this, it->second));
}

Result<std::vector<std::string>> MemFileSystem::ListDir(const std::string& dir) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  const std::string prefix = dir + "/";
  for (const auto& [name, f] : files_) {
    if (name.compare(0, prefix.size(), prefix) == 0 && name.find('/', prefix.size()) == std::string::npos) {
      out.push_back(name.substr(prefix.size()));
    }
  }
  return out;
}

Status MemFileSystem::CreateDir(const std::string&) {
  return Status::Ok();
}

Status MemFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(from);
  if (it == files_.end()) return Status::FromErrno(ENOENT, "memfs rename " + from);
  auto f = it->second;
  files_.erase(it);
  files_[to] = f;
  return Status::Ok();
}

Status MemFileSystem::Remove(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::FromErrno(ENOENT, "memfs remove " + path);
  files_.erase(it);
  return Status::Ok();
}

Status MemFileSystem::Truncate(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::FromErrno(ENOENT, "memfs truncate " + path);
  it->second->data.resize(size, '\0');
  it->second->durable.resize(size, '\0');
  return Status::Ok();
}

Result<uint64_t> MemFileSystem::AllocatedBytes(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(path);
  if (it == files_.end()) return Status::FromErrno(ENOENT, "memfs stat " + path);
  return static_cast<uint64_t>(it->second->data.size());
}

void MemFileSystem::Crash() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [name, f] : files_) f->data = f->durable;
}

void MemFileSystem::SetSyncError(int err) {
  std::lock_guard<std::mutex> l(mu_);
  sync_error_ = err;
}

void MemFileSystem::SetCapacity(uint64_t bytes) {
  std::lock_guard<std::mutex> l(mu_);
  capacity_ = bytes;
}

std::string* MemFileSystem::MutableContents(const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  auto& f = files_[path];
  if (!f) f = std::make_shared<File>();
  return &f->data;
}

}  // namespace kvf::logstore
