// Multi-tensor launches, after PyTorch's multi_tensor_apply: up to kListMax tensors travel in
// one kernel's arguments (a struct passed by value), each cut into chunks of kChunk elements,
// one block per chunk, so an optimizer step over a whole parameter list is a few launches
// instead of one per tensor. The host never reads device data to set them up.
#pragma once
#include <cuda_runtime.h>
#include <cstdint>
#include <vector>
#include "backends/cuda/chunk_map.h"
#include "backends/cuda/launch.cuh"

namespace cgad::cuda {

// Calls launch(list) for consecutive batches of `items` (of a type the caller's List can take):
// fill(list, item) adds one item and returns false when the list is full.
template <typename List, typename Item, typename Fill, typename Launch>
void for_each_batch(const std::vector<Item>& items, Fill fill, Launch launch) {
  List list{};
  for (const Item& it : items) {
    if (!fill(list, it)) {
      launch(list);
      list = List{};
      fill(list, it);
    }
  }
  if (list.chunks.count > 0) launch(list);
}

}  // namespace cgad::cuda
