#include "async_engine.hpp"
#include "cuda_staging.hpp"

#include <sluice/monitor/recorder.hpp>

#include <cstring>

namespace sluice::coll {

void AllreduceHandle::State::finish(std::exception_ptr e) {
  {
    std::lock_guard<std::mutex> lock(m);
    done = true;
    error = std::move(e);
  }
  cv.notify_all();
}

bool AllreduceHandle::test() const {
  if (!state_) throw InvalidArgument("AllreduceHandle::test: empty handle");
  std::lock_guard<std::mutex> lock(state_->m);
  if (state_->done && state_->error) std::rethrow_exception(state_->error);
  return state_->done;
}

void AllreduceHandle::wait() const {
  if (!state_) throw InvalidArgument("AllreduceHandle::wait: empty handle");
  // The caller's wait is the allreduce time its step could not hide behind compute: its
  // step's allreduce phase (the bucket itself is recorded on the progress thread).
  monitor::PhaseScope exposed(monitor::Phase::allreduce);
  std::unique_lock<std::mutex> lock(state_->m);
  state_->cv.wait(lock, [&] { return state_->done; });
  if (state_->error) std::rethrow_exception(state_->error);
}

AsyncEngine::AsyncEngine(Run run, std::size_t fusion_bytes, std::chrono::microseconds cycle, bool cuda,
                         std::uint32_t ranks, std::span<char> fusion_memory)
    : run_(std::move(run)),
      fusion_bytes_(fusion_bytes),
      cycle_(cycle),
      cuda_(cuda),
      ranks_(ranks),
      fusion_memory_(fusion_memory.size() >= fusion_bytes ? fusion_memory : std::span<char>()),
      thread_([this] { loop(); }) {}

AsyncEngine::~AsyncEngine() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<AllreduceHandle::State> AsyncEngine::submit(const void* send, void* recv, std::size_t count,
                                                            DataType type, ReduceOp op) {
  auto state = std::make_shared<AllreduceHandle::State>();
  {
    std::lock_guard<std::mutex> lock(m_);
    if (failed_) {
      state->done = true;
      state->error = failed_;
      return state;
    }
    if (stopping_) throw BrokenCommunicator("allreduce_async: the communicator is being destroyed");
    queue_.push_back(Item{send ? send : recv, recv, count, type, op, state});
  }
  cv_.notify_all();
  return state;
}

void AsyncEngine::loop() {
  std::size_t processed_last = 0;
  for (;;) {
    std::int64_t agree[2];
    {
      std::unique_lock<std::mutex> lock(m_);
      // Pace the agreement rounds: at once while work flows, else once per cycle.
      if (processed_last == 0 && !stopping_) cv_.wait_for(lock, cycle_, [&] { return stopping_ || !queue_.empty(); });
      agree[0] = std::int64_t(queue_.size());
      agree[1] = stopping_ ? 0 : -1;  // min over ranks: 0 only when every rank is stopping
    }
    std::vector<Item> batch;
    try {
      run_(agree, agree, 2, DataType::i64, ReduceOp::min);
      if (agree[0] == 0 && agree[1] == 0) break;
      {
        std::lock_guard<std::mutex> lock(m_);
        for (std::int64_t i = 0; i < agree[0]; ++i) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      processed_last = batch.size();
      process(batch);
    } catch (...) {
      // The communicator is broken: fail what we hold, what is queued and what comes.
      std::exception_ptr e = std::current_exception();
      std::deque<Item> rest;
      {
        std::lock_guard<std::mutex> lock(m_);
        failed_ = e;
        rest.swap(queue_);
      }
      for (Item& it : batch)
        if (it.state) it.state->finish(e);
      for (Item& it : rest) it.state->finish(e);
      return;
    }
  }
  // Every rank stopped; anything still queued here was submitted but never agreed on.
  std::lock_guard<std::mutex> lock(m_);
  auto e = std::make_exception_ptr(BrokenCommunicator("allreduce_async: the communicator was destroyed first"));
  for (Item& it : queue_) it.state->finish(e);
  queue_.clear();
}

void AsyncEngine::process(std::vector<Item>& items) {
  std::size_t i = 0;
  while (i < items.size()) {
    // A bucket: consecutive items of one type and op, up to fusion_bytes together.
    const DataType type = items[i].type;
    const ReduceOp op = items[i].op;
    const std::size_t esz = size_of(type);
    std::size_t j = i, bytes = 0;
    while (j < items.size() && items[j].type == type && items[j].op == op &&
           (j == i || bytes + items[j].count * esz <= fusion_bytes_)) {
      bytes += items[j].count * esz;
      ++j;
    }
    auto copy = [&](void* dst, const void* src, std::size_t n) {
      if (cuda_) copy_any(dst, src, n);
      else std::memcpy(dst, src, n);
    };
    const std::uint64_t t0 = monitor::now_ns();
    if (j - i == 1) {
      run_(items[i].send, items[i].recv, items[i].count, type, op);
    } else {
      // A bucket of several items is at most fusion_bytes_ (one item alone is not copied).
      if (fusion_memory_.empty() && fusion_.size() < bytes) fusion_.resize(bytes);
      char* fused = fusion_memory_.empty() ? fusion_.data() : fusion_memory_.data();
      std::size_t off = 0;
      for (std::size_t k = i; k < j; ++k) {
        copy(fused + off, items[k].send, items[k].count * esz);
        off += items[k].count * esz;
      }
      run_(fused, fused, bytes / esz, type, op);
      off = 0;
      for (std::size_t k = i; k < j; ++k) {
        copy(items[k].recv, fused + off, items[k].count * esz);
        off += items[k].count * esz;
      }
    }
    // Telemetry: the bucket is one allreduce of its total bytes (fusion copies included), recorded
    // before the handles complete so that a snapshot after wait() sees it.
    monitor::record_allreduce(bytes, monitor::now_ns() - t0, ranks_);
    for (std::size_t k = i; k < j; ++k) {
      items[k].state->finish(nullptr);
      items[k].state.reset();
    }
    i = j;
  }
}

}  // namespace sluice::coll
