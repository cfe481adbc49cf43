#include <sluice/staging/cache.hpp>

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>
#include <sluice/staging/hash.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <future>
#include <memory>
#include <unordered_map>
#include <vector>

namespace sluice::staging {
// The index file as read: each entry's name, last use and record text point into TEXT;
// a record is parsed only when its entry is looked up (a stage served from the cache
// looks up every entry once; parsing all 20,000 records up front cost ~4 us each).
namespace detail {
struct LoadedIndex {
  std::string text;
  struct Slot {
    std::string_view name;
    std::int64_t last_use;
    std::string_view record;
  };
  std::vector<Slot> slots;  // sorted by name

  const Slot* find(std::string_view name) const {
    auto it = std::lower_bound(slots.begin(), slots.end(), name, [](const Slot& s, std::string_view n) { return s.name < n; });
    return it != slots.end() && it->name == name ? &*it : nullptr;
  }
};
}  // namespace detail

namespace {

using detail::LoadedIndex;

constexpr const char* kRecordSuffix = ".meta";

struct Indexed {
  CacheEntry entry;
  std::int64_t last_use = 0;
};
using Index = std::unordered_map<std::string, Indexed>;
constexpr std::size_t kNameLen = 32;
// What a killed stage or eviction left is removed once this old (a live one finishes in
// well under a second, between its link and its record).
constexpr std::int64_t kIncompleteAgeNs = 3600ll * 1000000000;
// A record is a few numbers and a path.
constexpr std::size_t kMaxRecord = 8192;

std::int64_t ns_of(const timespec& t) { return static_cast<std::int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec; }

std::int64_t now_ns() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return ns_of(t);
}

std::string fan_of(const std::string& name) { return name.substr(0, 2); }

bool is_entry_name(std::string_view n) {
  return n.size() == kNameLen && n.find_first_not_of("0123456789abcdef") == std::string::npos;
}

std::string record_text(const CacheEntry& e) {
  const CacheKey& k = e.key;
  return "sluice-cache 1\ndev " + std::to_string(k.dev) + "\nino " + std::to_string(k.ino) + "\nsize " +
         std::to_string(k.size) + "\nmtime_ns " + std::to_string(k.mtime_ns) + "\nctime_ns " +
         std::to_string(k.ctime_ns) + "\nxxh3 " + to_hex(e.xxh3) + "\nchunk_size " + std::to_string(e.chunk_size) +
         "\nsource " + k.source + "\n";
}

// Parses a record; nullopt when it is not one (damaged, half-written by hand, another version).
template <typename T>
bool field(std::string_view& text, std::string_view label, T& out) {
  if (text.substr(0, label.size()) != label || text.size() <= label.size() || text[label.size()] != ' ') return false;
  text.remove_prefix(label.size() + 1);
  const auto nl = text.find('\n');
  if (nl == std::string_view::npos) return false;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + nl, out);
  if (ec != std::errc() || p != text.data() + nl) return false;
  text.remove_prefix(nl + 1);
  return true;
}

std::optional<CacheEntry> parse_record(std::string_view t) {
  constexpr std::string_view kHead = "sluice-cache 1\n";
  if (t.substr(0, kHead.size()) != kHead) return std::nullopt;
  t.remove_prefix(kHead.size());
  CacheEntry e;
  std::string_view hex;
  if (!field(t, "dev", e.key.dev) || !field(t, "ino", e.key.ino) || !field(t, "size", e.key.size) ||
      !field(t, "mtime_ns", e.key.mtime_ns) || !field(t, "ctime_ns", e.key.ctime_ns))
    return std::nullopt;
  if (t.substr(0, 5) != "xxh3 " || t.size() < 22 || t[21] != '\n') return std::nullopt;
  try {
    e.xxh3 = from_hex(std::string(t.substr(5, 16)));
  } catch (const InvalidArgument&) {
    return std::nullopt;
  }
  t.remove_prefix(22);
  if (!field(t, "chunk_size", e.chunk_size)) return std::nullopt;
  // The source path is the rest, up to the final newline (a path may hold anything but NUL).
  if (t.substr(0, 7) != "source " || t.size() < 9 || t.back() != '\n') return std::nullopt;
  e.key.source = std::string(t.substr(7, t.size() - 8));
  return e;
}

std::string read_small(int fd, const std::string& name) {
  std::string text(kMaxRecord + 1, '\0');
  std::size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("read " + name, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  text.resize(got);
  return text;
}

void check_ours(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw SystemError("stat " + path, errno);
  if (st.st_uid != ::geteuid() || (st.st_mode & 022) != 0)
    throw Error("cache directory " + path + " must belong to uid " + std::to_string(::geteuid()) +
                " and not be writable by group or others (anyone who can write into it decides what its "
                "owner's jobs read)");
}

std::vector<std::string> list_names(int dir, const std::string& what) {
  int fd = ::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw SystemError("open " + what, errno);
  std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd), ::closedir);
  if (!d) {
    int err = errno;
    ::close(fd);
    throw SystemError("open " + what, err);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(d.get())) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(std::move(n));
    errno = 0;
  }
  if (errno != 0) throw SystemError("read " + what, errno);
  return names;
}

// The index: every entry's record and last use in one file, read once per stage, so a hit
// costs no read of its record (a cold cache pays one disk read per record otherwise). It
// is a summary, rewritten under CACHE/index.lock at the end of a stage and by evict_cache;
// entries it lacks (added by a stage that died before writing it) are read from their
// records. Each entry: "NAME LAST_USE_NS LEN\n" then LEN bytes of record text.
constexpr const char* kIndexName = "index";
constexpr const char* kIndexLock = "index.lock";
constexpr std::string_view kIndexHead = "sluice-cache-index 1\n";
constexpr std::size_t kMaxIndex = std::size_t{1} << 30;

LoadedIndex load_index(int root, const std::string& path) {
  LoadedIndex out;
  UniqueFd fd;
  try {
    fd = open_beneath(root, kIndexName, O_RDONLY | O_NONBLOCK);
  } catch (const SystemError& e) {
    if (e.code() == ENOENT) return out;
    throw;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw SystemError("stat " + path + "/" + kIndexName, errno);
  if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) > kMaxIndex) return out;
  std::string& text = out.text;
  text.resize(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("read " + path + "/" + kIndexName, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  std::string_view t(text.data(), got);
  if (t.substr(0, kIndexHead.size()) != kIndexHead) return out;
  t.remove_prefix(kIndexHead.size());
  out.slots.reserve(t.size() / 200);
  // A damaged tail loses the entries after it (their records still serve).
  while (!t.empty()) {
    const auto sp = t.find(' ');
    if (sp != kNameLen || !is_entry_name(t.substr(0, sp))) break;
    const std::string_view name = t.substr(0, sp);
    t.remove_prefix(sp + 1);
    std::int64_t last_use = 0;
    std::size_t len = 0;
    const auto sp2 = t.find(' ');
    if (sp2 == std::string_view::npos) break;
    if (std::from_chars(t.data(), t.data() + sp2, last_use).ptr != t.data() + sp2) break;
    t.remove_prefix(sp2 + 1);
    const auto nl = t.find('\n');
    if (nl == std::string_view::npos) break;
    if (std::from_chars(t.data(), t.data() + nl, len).ptr != t.data() + nl) break;
    t.remove_prefix(nl + 1);
    if (len > t.size()) break;
    out.slots.push_back({name, last_use, t.substr(0, len)});
    t.remove_prefix(len);
  }
  // Written sorted (write_index); an index from elsewhere is sorted here.
  auto by_name = [](const LoadedIndex::Slot& a, const LoadedIndex::Slot& b) { return a.name < b.name; };
  if (!std::is_sorted(out.slots.begin(), out.slots.end(), by_name)) std::sort(out.slots.begin(), out.slots.end(), by_name);
  return out;
}

// Every entry of the index parsed, for the rewrites (flush_index, evict_cache).
Index read_index(int root, const std::string& path) {
  const LoadedIndex loaded = load_index(root, path);
  Index index;
  index.reserve(loaded.slots.size());
  for (const auto& s : loaded.slots)
    if (auto e = parse_record(s.record); e && e->key.name() == s.name)
      index[std::string(s.name)] = {std::move(*e), s.last_use};
  return index;
}

void write_index(int root, const Index& index, const std::string& path) {
  std::vector<const Index::value_type*> sorted;
  sorted.reserve(index.size());
  for (const auto& kv : index) sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  std::string text(kIndexHead);
  for (const auto* kv : sorted) {
    const auto& [name, ix] = *kv;
    const std::string rec = record_text(ix.entry);
    text += name + " " + std::to_string(ix.last_use) + " " + std::to_string(rec.size()) + "\n" + rec;
  }
  // Not fsync'ed: after a crash a missing or damaged index only costs record reads.
  TempFile tmp(open_beneath(root, ".", O_RDONLY | O_DIRECTORY), kIndexName, 0600);
  for (std::size_t done = 0; done < text.size();) {
    ssize_t n = ::write(tmp.fd(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw SystemError("write " + path + "/" + tmp.temp_name(), errno);
    done += static_cast<std::size_t>(n);
  }
  tmp.close();
  tmp.commit(/*replace=*/true);
}

UniqueFd lock_index(int root, const std::string& path) {
  UniqueFd fd = open_beneath(root, kIndexLock, O_RDWR | O_CREAT, 0600);
  while (::flock(fd.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw SystemError("lock " + path + "/" + kIndexLock, errno);
  return fd;
}

// One pass over the cache: complete entries and what is left of incomplete ones. Entries
// in INDEX take their size and last use from it (no stat); others are stat'ed.
struct Scanned {
  struct Entry {
    std::shared_ptr<const UniqueFd> dir;
    std::string name;
    std::uint64_t bytes;
    std::int64_t last_use;
  };
  struct Stray {
    std::shared_ptr<const UniqueFd> dir;
    std::string name;
    std::int64_t age_ns;
  };
  std::vector<Entry> entries;
  std::vector<Stray> strays;
};

Scanned scan(int root, const std::string& path, const Index& index) {
  Scanned out;
  const std::int64_t now = now_ns();
  char hex[3];
  auto stray = [&](const std::shared_ptr<const UniqueFd>& dir, const std::string& n) {
    struct stat st {};
    if (::fstatat(dir->get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) out.strays.push_back({dir, n, now - ns_of(st.st_ctim)});
  };
  for (unsigned s = 0; s < 256; ++s) {
    std::snprintf(hex, sizeof hex, "%02x", s);
    std::shared_ptr<const UniqueFd> dir;
    try {
      dir = std::make_shared<const UniqueFd>(open_beneath(root, hex, O_RDONLY | O_DIRECTORY));
    } catch (const SystemError& e) {
      if (e.code() == ENOENT) continue;
      throw;  // a symlink planted as CACHE/ab: refused, naming it
    }
    std::vector<std::string> names = list_names(dir->get(), path + "/" + hex);
    std::sort(names.begin(), names.end());
    auto has = [&](const std::string& n) { return std::binary_search(names.begin(), names.end(), n); };
    for (const std::string& n : names) {
      if (is_entry_name(n)) {
        if (!has(n + kRecordSuffix)) {
          stray(dir, n);
        } else if (auto it = index.find(n); it != index.end()) {
          out.entries.push_back({dir, n, it->second.entry.key.size, it->second.last_use});
        } else {
          struct stat st {}, rec {};
          const std::string r = n + kRecordSuffix;
          if (::fstatat(dir->get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // just evicted
          if (S_ISREG(st.st_mode) && ::fstatat(dir->get(), r.c_str(), &rec, AT_SYMLINK_NOFOLLOW) == 0 &&
              S_ISREG(rec.st_mode))
            out.entries.push_back({dir, n, static_cast<std::uint64_t>(st.st_size), ns_of(rec.st_mtim)});
          else
            stray(dir, n);
        }
      } else if (n.size() == kNameLen + 5 && is_entry_name(n.substr(0, kNameLen)) && n.ends_with(kRecordSuffix)) {
        if (!has(n.substr(0, kNameLen))) stray(dir, n);
      } else if (is_temp_name(n)) {
        stray(dir, n);
      }
    }
  }
  return out;
}

}  // namespace

std::string CacheKey::name() const {
  std::string buf = source;
  buf.push_back('\0');
  for (std::uint64_t v : {dev, ino, size, static_cast<std::uint64_t>(mtime_ns), static_cast<std::uint64_t>(ctime_ns)})
    for (int b = 0; b < 8; ++b) buf.push_back(static_cast<char>(v >> (8 * b)));
  const XXH128_hash_t h = XXH3_128bits(buf.data(), buf.size());
  return to_hex(h.high64) + to_hex(h.low64);
}

// Last uses are kept at this granularity (as relatime keeps atime): a hit on an entry whose
// indexed last use is more recent does not rewrite the index, so a stage served from a
// warm cache writes nothing. Eviction may take entries used within the same hour in
// either order.
constexpr std::int64_t kLastUseGranularityNs = 3600ll * 1000000000;

struct NodeCache::State {
  std::once_flag loaded;
  std::future<LoadedIndex> loading;  // load_index_ahead()
  LoadedIndex index;                 // read-only once loaded
  std::mutex mu;                     // guards what follows
  struct Touched {
    CacheEntry entry;
    bool stale;  // added, or its last use in the index is older than the granularity
  };
  std::unordered_map<std::string, Touched> touched;  // hit or added by this stage
  std::vector<std::string> gone;
};

NodeCache::NodeCache(const std::string& dir, bool create)
    : path_(dir), root_(open_root(dir, create)), euid_(::geteuid()), opened_ns_(now_ns()), st_(std::make_unique<State>()) {
  check_ours(root_.get(), path_);
}

NodeCache::~NodeCache() = default;

void NodeCache::load_index_ahead() {
  st_->loading = std::async(std::launch::async, [this] { return load_index(root_.get(), path_); });
}

const LoadedIndex& NodeCache::index() {
  std::call_once(st_->loaded, [&] {
    // A failed background read (its error rethrown here) is not retried from the future.
    if (st_->loading.valid()) {
      auto f = std::move(st_->loading);
      st_->index = f.get();
    } else {
      st_->index = load_index(root_.get(), path_);
    }
  });
  return st_->index;
}

std::shared_ptr<const UniqueFd> NodeCache::fan_dir(const std::string& name, bool create) {
  const unsigned idx = static_cast<unsigned>(std::stoul(fan_of(name), nullptr, 16));
  std::lock_guard lk(mu_);
  if (fans_[idx]) return fans_[idx];
  const std::string rel = fan_of(name);
  UniqueFd fd;
  try {
    fd = create ? make_dirs_beneath(root_.get(), rel, 0700) : open_beneath(root_.get(), rel, O_RDONLY | O_DIRECTORY);
  } catch (const SystemError& e) {
    if (e.code() == ENOENT && !create) return nullptr;
    throw;
  }
  check_ours(fd.get(), path_ + "/" + rel);
  fans_[idx] = std::make_shared<const UniqueFd>(std::move(fd));
  return fans_[idx];
}

std::optional<CacheEntry> NodeCache::lookup(const CacheKey& key) {
  const std::string name = key.name();
  if (const auto* slot = index().find(name))
    if (auto e = parse_record(slot->record); e && e->key == key) {
      if (opened_ns_ - slot->last_use > kLastUseGranularityNs) {  // else its last use stands
        std::lock_guard lk(st_->mu);
        st_->touched[name] = {*e, true};
      }
      return e;
    }
  const auto fan = fan_dir(name, false);
  if (!fan) return std::nullopt;
  const int dir = fan->get();
  const std::string rec = name + kRecordSuffix;
  UniqueFd fd(::openat(dir, rec.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT || errno == ELOOP) return std::nullopt;  // ELOOP: a symlink planted there
    throw SystemError("open " + path_ + "/" + fan_of(name) + "/" + rec, errno);
  }
  std::optional<CacheEntry> e = parse_record(read_small(fd.get(), path_ + "/" + fan_of(name) + "/" + rec));
  if (!e || !(e->key == key)) return std::nullopt;  // damaged, or another key with the same hash
  ::futimens(fd.get(), nullptr);  // last use, should the index be lost; best effort
  std::lock_guard lk(st_->mu);
  st_->touched[name] = {*e, true};
  return e;
}

std::optional<std::string> NodeCache::link_into(const CacheEntry& entry, int dir, const std::string& final_name,
                                                mode_t mode, bool as_final) {
  const std::string name = entry.key.name();
  const auto fan = fan_dir(name, false);
  if (!fan) return std::nullopt;
  const int from = fan->get();
  std::string temp;
  try {
    if (!as_final) {
      temp = link_temp(from, name, dir, final_name);
    } else if (::linkat(from, name.c_str(), dir, final_name.c_str(), 0) == 0) {
      temp = final_name;
    } else {
      throw SystemError("link " + path_ + "/" + fan_of(name) + "/" + name + " to " + fd_path(dir) + "/" + final_name, errno);
    }
  } catch (const SystemError& e) {
    if (e.code() == EMLINK) return std::nullopt;  // too many links to this one
    if (e.code() != ENOENT) throw;
    std::lock_guard lk(st_->mu);  // evicted meanwhile
    st_->touched.erase(name);
    st_->gone.push_back(name);
    return std::nullopt;
  }
  // Check what was linked, not what was there before: a symlink, another user's file, or
  // data a job wrote into through its own link is not the source's content.
  struct stat st {};
  if (::fstatat(dir, temp.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    const int err = errno;
    ::unlinkat(dir, temp.c_str(), 0);
    throw SystemError("stat " + fd_path(dir) + "/" + temp, err);
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != euid_ || static_cast<std::uint64_t>(st.st_size) != entry.key.size ||
      ns_of(st.st_mtim) != entry.key.mtime_ns || (st.st_mode & 07777) != mode) {
    ::unlinkat(dir, temp.c_str(), 0);
    forget(entry.key);
    return std::nullopt;
  }
  return temp;
}

bool NodeCache::add(const CacheEntry& entry, int dir, const std::string& name) {
  const std::string ename = entry.key.name();
  const auto fan = fan_dir(ename, true);
  const int to = fan->get();
  // linkat never replaces: EEXIST is an entry another stage added (or is adding).
  if (::linkat(dir, name.c_str(), to, ename.c_str(), 0) != 0) {
    if (errno == EEXIST) return false;
    throw SystemError("link " + fd_path(dir) + "/" + name + " into the cache " + path_, errno);
  }
  const std::string text = record_text(entry);
  try {
    TempFile rec(fan, ename + kRecordSuffix, 0600);
    for (std::size_t done = 0; done < text.size();) {
      ssize_t n = ::write(rec.fd(), text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw SystemError("write " + path_ + "/" + fan_of(ename) + "/" + rec.temp_name(), errno);
      done += static_cast<std::size_t>(n);
    }
    rec.close();
    rec.commit(/*replace=*/false);
  } catch (const SystemError& e) {
    ::unlinkat(to, ename.c_str(), 0);  // no data without its record
    if (e.code() == EEXIST) return false;
    throw;
  }
  std::lock_guard lk(st_->mu);
  st_->touched[ename] = {entry, true};
  return true;
}

void NodeCache::forget(const CacheKey& key) {
  const std::string name = key.name();
  const auto fan = fan_dir(name, false);
  if (!fan) return;
  const int dir = fan->get();
  // The record first: without it the data is never served.
  ::unlinkat(dir, (name + kRecordSuffix).c_str(), 0);
  ::unlinkat(dir, name.c_str(), 0);
  std::lock_guard lk(st_->mu);
  st_->touched.erase(name);
  st_->gone.push_back(name);
}

void NodeCache::flush_index() {
  std::lock_guard lk(st_->mu);
  const bool stale = !st_->gone.empty() ||
                     std::any_of(st_->touched.begin(), st_->touched.end(), [](const auto& t) { return t.second.stale; });
  if (!stale) {
    st_->touched.clear();
    return;
  }
  UniqueFd lock = lock_index(root_.get(), path_);
  Index index = read_index(root_.get(), path_);  // with what other stages wrote meanwhile
  for (const std::string& n : st_->gone) index.erase(n);
  const std::int64_t now = now_ns();
  for (const auto& [n, t] : st_->touched) index[n] = {t.entry, now};
  write_index(root_.get(), index, path_);
  st_->touched.clear();
  st_->gone.clear();
}

CacheStats cache_stats(const std::string& cache_dir) {
  UniqueFd root = open_root(cache_dir, false);
  const Scanned s = scan(root.get(), cache_dir, read_index(root.get(), cache_dir));
  CacheStats st;
  st.entries = s.entries.size();
  st.incomplete = s.strays.size();
  for (const auto& e : s.entries) {
    st.bytes += e.bytes;
    if (st.oldest_use_ns == 0 || e.last_use < st.oldest_use_ns) st.oldest_use_ns = e.last_use;
    st.newest_use_ns = std::max(st.newest_use_ns, e.last_use);
  }
  return st;
}

void evict_cache(const std::string& cache_dir, std::uint64_t max_bytes) {
  UniqueFd root = open_root(cache_dir, false);
  UniqueFd lock = lock_index(root.get(), cache_dir);
  Index index = read_index(root.get(), cache_dir);
  Scanned s = scan(root.get(), cache_dir, index);
  for (const auto& x : s.strays)
    if (x.age_ns > kIncompleteAgeNs) ::unlinkat(x.dir->get(), x.name.c_str(), 0);
  const std::int64_t now = now_ns();
  for (const std::string& n : list_names(root.get(), cache_dir)) {  // index temporaries of killed stages
    struct stat st {};
    if (is_temp_name(n) && ::fstatat(root.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        now - ns_of(st.st_ctim) > kIncompleteAgeNs)
      ::unlinkat(root.get(), n.c_str(), 0);
  }
  std::uint64_t total = 0;
  for (const auto& e : s.entries) total += e.bytes;
  if (max_bytes > 0 && total > max_bytes) {
    // Least recently used first; ties by name, so every evictor agrees.
    std::sort(s.entries.begin(), s.entries.end(), [](const auto& a, const auto& b) {
      return a.last_use != b.last_use ? a.last_use < b.last_use : a.name < b.name;
    });
    std::size_t k = 0;
    for (; k < s.entries.size() && total > max_bytes; ++k) {
      const auto& e = s.entries[k];
      // The record first, so a concurrent lookup misses rather than linking vanishing data.
      if (::unlinkat(e.dir->get(), (e.name + kRecordSuffix).c_str(), 0) != 0 && errno != ENOENT)
        throw SystemError("evict " + cache_dir + "/" + fan_of(e.name) + "/" + e.name + kRecordSuffix, errno);
      if (::unlinkat(e.dir->get(), e.name.c_str(), 0) != 0 && errno != ENOENT)
        throw SystemError("evict " + cache_dir + "/" + fan_of(e.name) + "/" + e.name, errno);
      total -= e.bytes;
    }
    s.entries.erase(s.entries.begin(), s.entries.begin() + static_cast<std::ptrdiff_t>(k));
  }
  // The index keeps the entries still there (and nothing evicted, or gone by hand).
  const std::size_t indexed = index.size();
  Index kept;
  for (const auto& e : s.entries)
    if (auto it = index.find(e.name); it != index.end()) kept.insert(index.extract(it));
  if (kept.size() != indexed) write_index(root.get(), kept, cache_dir);
}

}  // namespace sluice::staging
