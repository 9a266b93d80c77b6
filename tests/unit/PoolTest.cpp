// The worker pool's GPU assignment (`gyrus run --jobs N` on a host with several GPUs):
// which GPUs there are to share, and which one the next worker gets.
#include <doctest/doctest.h>

#include "gyrus/exec/Pool.h"

using gyrus::exec::pickGpu;
using gyrus::exec::visibleGpus;

TEST_CASE("the pool shares out the GPUs a CUDA run may use, and only those") {
  using V = std::vector<std::string>;
  CHECK(visibleGpus("auto", nullptr, 4) == V{"0", "1", "2", "3"});
  CHECK(visibleGpus("cuda", nullptr, 2) == V{"0", "1"});
  // The user's CUDA_VISIBLE_DEVICES is the list (ids or UUIDs), spaces trimmed.
  CHECK(visibleGpus("auto", "3, 5", 8) == V{"3", "5"});
  CHECK(visibleGpus("cuda", "GPU-aa,GPU-bb,GPU-cc", 0) == V{"GPU-aa", "GPU-bb", "GPU-cc"});
  // Nothing to share: a CPU run, one named GPU, one GPU, none.
  CHECK(visibleGpus("cpu", nullptr, 4).empty());
  CHECK(visibleGpus("cuda:1", nullptr, 4).empty());
  CHECK(visibleGpus("auto", nullptr, 1).empty());
  CHECK(visibleGpus("auto", "", 4).empty());
  CHECK(visibleGpus("auto", nullptr, 0).empty());
}

TEST_CASE("the next worker gets the least used GPU, the first of equals") {
  std::vector<std::string> gpus{"0", "1", "2"};
  CHECK(pickGpu(gpus, {0, 0, 0}) == 0);
  CHECK(pickGpu(gpus, {1, 0, 0}) == 1);
  CHECK(pickGpu(gpus, {1, 1, 0}) == 2);
  CHECK(pickGpu(gpus, {1, 1, 1}) == 0);
  CHECK(pickGpu(gpus, {2, 1, 2}) == 1);
  CHECK(pickGpu({}, {}) == -1);
}

TEST_CASE("a data-parallel worker gets one GPU per rank, the least used, in order") {
  using gyrus::exec::pickGpus;
  using I = std::vector<int>;
  std::vector<std::string> gpus{"0", "1", "2", "3"};
  CHECK(pickGpus(gpus, {0, 0, 0, 0}, 2) == I{0, 1});
  CHECK(pickGpus(gpus, {1, 1, 0, 0}, 2) == I{2, 3});
  CHECK(pickGpus(gpus, {1, 0, 1, 0}, 2) == I{1, 3});
  CHECK(pickGpus(gpus, {0, 2, 1, 0}, 3) == I{0, 2, 3});
  CHECK(pickGpus(gpus, {0, 0, 0, 0}, 1) == I{0});
  // Fewer GPUs than ranks: all of them (the ranks share).
  CHECK(pickGpus(gpus, {3, 0, 1, 2}, 8) == I{0, 1, 2, 3});
  CHECK(pickGpus({}, {}, 2).empty());
}
