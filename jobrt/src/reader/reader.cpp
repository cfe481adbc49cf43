// The reader: a bounded queue of ready batches filled by one I/O thread into reusable
// buffers, lent to the caller as Batch objects (no copy); exact resume; counters. Every read
// and every wait in next() is also reported to the process-wide telemetry recorder
// (docs/telemetry.md, "Recorded automatically").
#include "internal.hpp"

#include <sluice/common/cuda_driver.hpp>
#include <sluice/monitor/recorder.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <sstream>
#include <thread>

namespace sluice::reader {

struct Batch::Slot {
  detail::Source* src = nullptr;
  void* impl = nullptr;
  std::uint64_t epoch = 0, step = 0;
  std::vector<std::uint64_t> ids;
  std::vector<std::uint8_t> padded;
  std::vector<std::span<std::byte>> data;  // per dataset: B x sample_bytes, in heap or pinned
  std::vector<std::size_t> sample_bytes;
  std::vector<std::vector<std::byte>> heap;  // the buffers, without copy_to_device
  // copy_to_device: every dataset's buffer in one pinned block, the same layout on the device,
  // and the event recorded after the batch's copy (next() waits for it).
  cuda::PinnedBuffer pinned;
  cuda::DeviceBuffer device;
  std::vector<std::size_t> offset;  // per dataset, into pinned and device
  cuda::UniqueEvent copied;
};

namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
}  // namespace

struct Reader::Impl {
  ReaderOptions opt;
  std::vector<std::string> resolved;
  std::unique_ptr<detail::Source> src;
  std::uint64_t n = 0, steps = 0;

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Batch::Slot>> slots;
  std::vector<Batch::Slot*> free;
  std::deque<Batch::Slot*> ready;
  std::size_t lent = 0;
  std::uint64_t prod_epoch = 0, prod_step = 0;  // the next batch the I/O thread reads
  std::uint64_t cons_epoch = 0, cons_step = 0;  // the next batch next() hands out
  std::exception_ptr error;
  bool stop = false;
  ReaderCounters counters;
  std::thread io;
  // copy_to_device: the driver, the creating thread's context (made current on the I/O
  // thread) and the I/O thread's stream.
  const cuda::Driver* cuda = nullptr;
  cuda::Context context = nullptr;
  cuda::UniqueStream stream;

  // I/O thread only.
  std::uint64_t order_epoch = ~0ull;
  std::vector<std::uint64_t> order;
  std::uint64_t advise_epoch = ~0ull;
  std::vector<std::uint64_t> advise_order;

  void start() {
    stop = false;
    io = std::thread([this] { run(); });
  }
  void halt() {
    {
      std::lock_guard lk(mu);
      stop = true;
    }
    cv.notify_all();
    if (io.joinable()) io.join();
    // Copies still queued read the pinned buffers: finish them before those are freed.
    if (stream) try {
        cuda->stream_synchronize(stream.get());
      } catch (...) {
      }
  }

  void fill(Batch::Slot& s) {
    if (order_epoch != s.epoch) {
      order = sharding::epoch_order(n, opt.seed, s.epoch, opt.shuffle);
      order_epoch = s.epoch;
    }
    const auto slots_ = sharding::batch_slots(n, opt.ranks, opt.rank, opt.batch_size, s.step);
    std::vector<std::pair<std::uint64_t, std::uint8_t>> items;
    items.reserve(slots_.size());
    for (const auto& sl : slots_) items.emplace_back(order[sl.position], sl.padded ? 1 : 0);
    std::sort(items.begin(), items.end());  // by id; a real sample before its pad repeat
    s.ids.clear();
    s.padded.clear();
    std::vector<std::uint64_t> unique;
    std::vector<std::size_t> row_of;  // row k -> unique row
    for (const auto& [id, pad] : items) {
      s.ids.push_back(id);
      s.padded.push_back(pad);
      if (unique.empty() || unique.back() != id) unique.push_back(id);
      row_of.push_back(unique.size() - 1);
    }
    std::vector<std::byte*> out;
    for (auto d : s.data) out.push_back(d.data());
    const auto t0 = Clock::now();
    const std::uint64_t bytes = src->read(unique, out);
    const auto dt = Clock::now() - t0;
    const double t = seconds(dt);
    if (unique.size() != s.ids.size()) {  // repeats (batch larger than what is left): expand in place
      for (std::size_t k = s.ids.size(); k-- > 0;)
        for (std::size_t d = 0; d < s.data.size(); ++d)
          if (row_of[k] != k)
            std::memmove(s.data[d].data() + k * s.sample_bytes[d], s.data[d].data() + row_of[k] * s.sample_bytes[d],
                         s.sample_bytes[d]);
    }
    if (cuda) {  // every dataset's rows in one copy (a batch always has B rows)
      const std::size_t block = s.offset.back() + s.data.back().size();
      cuda->copy_to_device_async(s.device.get(), s.pinned.get(), block, stream.get());
      cuda->event_record(s.copied.get(), stream.get());
    }
    if (opt.advise_ahead > 0) advise_after(s.epoch, s.step);
    std::lock_guard lk(mu);
    counters.bytes_read += bytes;
    counters.read_seconds += t;
    counters.window_bytes = src->window_bytes();
    // Under mu with the counters, so that counters() read before and after a snapshot bound it.
    monitor::record_io(bytes, static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(dt).count()));
  }

  // The batch advise_ahead steps beyond the queue's end (epoch, step) + depth + advise_ahead,
  // which the next epoch's order may already decide (clairvoyance across epochs).
  void advise_after(std::uint64_t epoch, std::uint64_t step) {
    std::uint64_t target = step + opt.prefetch_depth + opt.advise_ahead;
    std::uint64_t e = epoch + target / steps;
    target %= steps;
    if (e != epoch && e != advise_epoch) {
      advise_order = sharding::epoch_order(n, opt.seed, e, opt.shuffle);
      advise_epoch = e;
    }
    const auto& ord = e == epoch ? order : advise_order;
    std::vector<std::uint64_t> ids;
    for (const auto& sl : sharding::batch_slots(n, opt.ranks, opt.rank, opt.batch_size, target)) ids.push_back(ord[sl.position]);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    src->advise(ids);
  }

  void run() {
    if (cuda) try {
        cuda->set_current_context(context);  // the copies go to the creating thread's device
      } catch (...) {
        std::lock_guard lk(mu);
        error = std::current_exception();
        cv.notify_all();
        return;
      }
    for (;;) {
      Batch::Slot* s = nullptr;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return stop || (!free.empty() && ready.size() < opt.prefetch_depth); });
        if (stop) return;
        s = free.back();
        free.pop_back();
        s->epoch = prod_epoch;
        s->step = prod_step;
      }
      try {
        fill(*s);
      } catch (...) {
        std::lock_guard lk(mu);
        free.push_back(s);
        error = std::current_exception();
        cv.notify_all();
        return;
      }
      {
        std::lock_guard lk(mu);
        ready.push_back(s);
        if (++prod_step == steps) {
          prod_step = 0;
          ++prod_epoch;
        }
      }
      cv.notify_all();
    }
  }

  void give_back(Batch::Slot* s) {
    {
      std::lock_guard lk(mu);
      free.push_back(s);
      --lent;
    }
    cv.notify_all();
  }
};

// ---------------------------------------------------------------------------------------------
Batch::Batch(Batch&& o) noexcept : owner_(std::move(o.owner_)), slot_(std::exchange(o.slot_, nullptr)) {}
Batch& Batch::operator=(Batch&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = std::move(o.owner_);
    slot_ = std::exchange(o.slot_, nullptr);
  }
  return *this;
}
Batch::~Batch() { release(); }
void Batch::release() noexcept {
  if (slot_) static_cast<Reader::Impl*>(slot_->impl)->give_back(slot_);
  slot_ = nullptr;
  owner_.reset();
}
std::uint64_t Batch::epoch() const noexcept { return slot_ ? slot_->epoch : 0; }
std::uint64_t Batch::step() const noexcept { return slot_ ? slot_->step : 0; }
std::size_t Batch::size() const noexcept { return slot_ ? slot_->ids.size() : 0; }
std::span<const std::uint64_t> Batch::indices() const noexcept {
  return slot_ ? std::span<const std::uint64_t>(slot_->ids) : std::span<const std::uint64_t>();
}
std::span<const std::uint8_t> Batch::padded() const noexcept {
  return slot_ ? std::span<const std::uint8_t>(slot_->padded) : std::span<const std::uint8_t>();
}
std::span<const std::byte> Batch::data(std::size_t d) const {
  if (!slot_) throw InvalidArgument("sluice reader: empty Batch");
  if (d >= slot_->data.size())
    throw InvalidArgument("sluice reader: dataset index " + std::to_string(d) + " out of range (" +
                          std::to_string(slot_->data.size()) + " datasets)");
  return {slot_->data[d].data(), slot_->ids.size() * slot_->sample_bytes[d]};
}
std::span<const std::byte> Batch::sample(std::size_t d, std::size_t i) const {
  auto b = data(d);
  if (i >= size()) throw InvalidArgument("sluice reader: sample " + std::to_string(i) + " out of range");
  return b.subspan(i * slot_->sample_bytes[d], slot_->sample_bytes[d]);
}
const void* Batch::device_data(std::size_t d) const {
  if (!slot_) throw InvalidArgument("sluice reader: empty Batch");
  if (!slot_->device) throw InvalidArgument("sluice reader: device_data: the reader was not opened with copy_to_device");
  if (d >= slot_->data.size())
    throw InvalidArgument("sluice reader: dataset index " + std::to_string(d) + " out of range (" +
                          std::to_string(slot_->data.size()) + " datasets)");
  return static_cast<const std::byte*>(slot_->device.get()) + slot_->offset[d];
}
void Batch::check_element_size(std::size_t d, std::size_t size) const {
  const auto& info = slot_->src->infos()[d];
  if (info.type.bytes != size)
    throw InvalidArgument("sluice reader: dataset '" + info.name + "' holds " + info.type.name() + ", not a " +
                          std::to_string(size) + "-byte type");
}

// ---------------------------------------------------------------------------------------------
std::string ReaderState::to_string() const {
  std::ostringstream o;
  o << "sluice-reader-state/1 seed=" << seed << " epoch=" << epoch << " step=" << step << " samples=" << samples
    << " ranks=" << ranks << " batch=" << batch_size << " shuffle=" << (shuffle ? 1 : 0);
  return o.str();
}

ReaderState ReaderState::from_string(const std::string& text) {
  std::istringstream in(text);
  std::string word;
  if (!(in >> word) || word != "sluice-reader-state/1")
    throw InvalidArgument("sluice reader: not a reader state: " + quote_input(text));
  ReaderState s;
  int seen = 0;
  while (in >> word) {
    const auto eq = word.find('=');
    if (eq == std::string::npos) throw InvalidArgument("sluice reader: bad reader state field " + quote_input(word));
    const std::string key = word.substr(0, eq), val = word.substr(eq + 1);
    std::uint64_t v = 0;
    try {
      std::size_t used = 0;
      v = std::stoull(val, &used);
      if (used != val.size() || val.empty() || val[0] == '-') throw std::invalid_argument("x");
    } catch (const std::exception&) {
      throw InvalidArgument("sluice reader: bad value in reader state: " + quote_input(word));
    }
    if (key == "seed") s.seed = v, seen |= 1;
    else if (key == "epoch") s.epoch = v, seen |= 2;
    else if (key == "step") s.step = v, seen |= 4;
    else if (key == "samples") s.samples = v, seen |= 8;
    else if (key == "ranks") s.ranks = static_cast<int>(v), seen |= 16;
    else if (key == "batch") s.batch_size = v, seen |= 32;
    else if (key == "shuffle") s.shuffle = v != 0, seen |= 64;
    else throw InvalidArgument("sluice reader: unknown reader state field " + quote_input(key));
  }
  if (seen != 127) throw InvalidArgument("sluice reader: incomplete reader state: " + quote_input(text));
  return s;
}

// ---------------------------------------------------------------------------------------------
Reader::Reader(ReaderOptions o) : impl_(std::make_shared<Impl>()) {
  if (o.batch_size == 0) throw InvalidArgument("sluice reader: batch_size must be at least 1");
  if (o.ranks < 1 || o.rank < 0 || o.rank >= o.ranks)
    throw InvalidArgument("sluice reader: rank " + std::to_string(o.rank) + " of " + std::to_string(o.ranks) + " is not valid");
  if (o.prefetch_depth == 0) throw InvalidArgument("sluice reader: prefetch_depth must be at least 1");
  Impl& m = *impl_;
  m.resolved = detail::resolve_staged(o.files, o);
  m.src = std::make_unique<detail::Source>(m.resolved, o.files, o);
  m.n = m.src->samples();
  m.steps = sharding::steps_per_epoch(m.n, o.ranks, o.batch_size, o.remainder);
  if (m.steps == 0)
    throw DataError(o.files.front(), o.datasets.front(),
                    std::to_string(m.n) + " samples do not fill one step of " + std::to_string(o.ranks) + " ranks x batch " +
                        std::to_string(o.batch_size) + " with drop_last (use Remainder::Pad or a smaller batch)");
  m.opt = std::move(o);
  m.prod_epoch = m.cons_epoch = m.opt.start_epoch;
  if (m.opt.copy_to_device) {
    m.cuda = cuda::Driver::process();
    if (!m.cuda)
      throw InvalidArgument("sluice reader: copy_to_device: no CUDA driver (libcuda.so.1 is not there, or cuInit found "
                            "no GPU)");
    m.context = m.cuda->current_context();
    if (!m.context)
      throw InvalidArgument("sluice reader: copy_to_device: no CUDA context is current on the thread creating the "
                            "reader (call cudaSetDevice first)");
    m.stream = cuda::UniqueStream(*m.cuda, m.cuda->stream_create());
  }
  // depth ready batches, plus two the caller may hold (the one in use and the next).
  const std::size_t nslots = m.opt.prefetch_depth + 2;
  for (std::size_t i = 0; i < nslots; ++i) {
    auto s = std::make_unique<Batch::Slot>();
    s->src = m.src.get();
    s->impl = &m;
    std::size_t total = 0;
    for (const auto& info : m.src->infos()) {
      s->offset.push_back(total);
      s->sample_bytes.push_back(info.sample_bytes);
      total += m.opt.batch_size * info.sample_bytes;
    }
    if (m.cuda) {
      s->pinned = cuda::PinnedBuffer(*m.cuda, m.cuda->host_alloc(total));
      s->device = cuda::DeviceBuffer(*m.cuda, m.cuda->device_alloc(total));
      s->copied = cuda::UniqueEvent(*m.cuda, m.cuda->event_create());
      auto* base = static_cast<std::byte*>(s->pinned.get());
      for (std::size_t d = 0; d < s->offset.size(); ++d)
        s->data.emplace_back(base + s->offset[d], m.opt.batch_size * s->sample_bytes[d]);
    } else {
      for (std::size_t d = 0; d < s->offset.size(); ++d) {
        s->heap.emplace_back(m.opt.batch_size * s->sample_bytes[d]);
        s->data.emplace_back(s->heap.back().data(), s->heap.back().size());
      }
    }
    m.free.push_back(s.get());
    m.slots.push_back(std::move(s));
  }
  m.start();
}

Reader::~Reader() {
  if (impl_) impl_->halt();
}
Reader::Reader(Reader&&) noexcept = default;
Reader& Reader::operator=(Reader&& o) noexcept {
  if (this != &o) {
    if (impl_) impl_->halt();
    impl_ = std::move(o.impl_);
  }
  return *this;
}

const std::vector<DatasetInfo>& Reader::datasets() const noexcept { return impl_->src->infos(); }
std::uint64_t Reader::samples() const noexcept { return impl_->n; }
std::uint64_t Reader::steps_per_epoch() const noexcept { return impl_->steps; }
const std::vector<std::string>& Reader::resolved_files() const noexcept { return impl_->resolved; }

Batch Reader::next() {
  Impl& m = *impl_;
  const auto t0 = Clock::now();
  std::unique_lock lk(m.mu);
  if (m.ready.empty() && !m.error && m.lent == m.slots.size())
    throw Error("sluice reader: all " + std::to_string(m.slots.size()) +
                " batch buffers are lent to the caller; destroy a Batch before asking for the next");
  const bool waited = m.ready.empty();  // no batch ready: the caller stalls on the I/O thread
  m.cv.wait(lk, [&] { return !m.ready.empty() || m.error; });
  if (m.ready.empty()) std::rethrow_exception(m.error);
  Batch b;
  b.slot_ = m.ready.front();
  m.ready.pop_front();
  b.owner_ = impl_;
  ++m.lent;
  m.cons_epoch = b.slot_->epoch;
  m.cons_step = b.slot_->step + 1;
  if (m.cons_step == m.steps) {
    m.cons_step = 0;
    ++m.cons_epoch;
  }
  if (m.cuda) {  // the batch's copy to the device, queued by the I/O thread, must be complete
    lk.unlock();
    m.cuda->event_synchronize(b.slot_->copied.get());
    lk.lock();
  }
  const auto waited_for = Clock::now() - t0;
  const double stall = seconds(waited_for);
  // Telemetry: only a real wait is a stall (record_stall counts every call as one event).
  if (waited)
    monitor::record_stall(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(waited_for).count()));
  m.counters.stall_seconds += stall;
  m.counters.last_stall_seconds = stall;
  ++m.counters.batches;
  lk.unlock();
  m.cv.notify_all();
  return b;
}

ReaderState Reader::state() const {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  return {m.opt.seed, m.cons_epoch, m.cons_step, m.n, m.opt.ranks, m.opt.batch_size, m.opt.shuffle};
}

void Reader::restore(const ReaderState& s) {
  Impl& m = *impl_;
  auto mismatch = [](const char* what, std::uint64_t have, std::uint64_t got) {
    return InvalidArgument(std::string("sluice reader: cannot restore: the state was saved with ") + what + "=" +
                           std::to_string(got) + ", this reader has " + std::to_string(have));
  };
  if (s.samples != m.n) throw mismatch("samples", m.n, s.samples);
  if (s.ranks != m.opt.ranks) throw mismatch("ranks", static_cast<std::uint64_t>(m.opt.ranks), static_cast<std::uint64_t>(s.ranks));
  if (s.batch_size != m.opt.batch_size) throw mismatch("batch", m.opt.batch_size, s.batch_size);
  if (s.shuffle != m.opt.shuffle) throw mismatch("shuffle", m.opt.shuffle, s.shuffle);
  if (s.step >= m.steps) throw mismatch("step (steps per epoch)", m.steps, s.step);
  m.halt();
  {
    std::lock_guard lk(m.mu);
    for (auto* r : m.ready) m.free.push_back(r);
    m.ready.clear();
    m.error = nullptr;
    m.opt.seed = s.seed;
    m.prod_epoch = m.cons_epoch = s.epoch;
    m.prod_step = m.cons_step = s.step;
  }
  m.order_epoch = ~0ull;
  m.advise_epoch = ~0ull;
  m.start();
}

ReaderCounters Reader::counters() const {
  std::lock_guard lk(impl_->mu);
  return impl_->counters;
}

}  // namespace sluice::reader
