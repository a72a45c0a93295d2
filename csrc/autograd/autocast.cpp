#include "autograd/autocast.h"
#include <array>

namespace cgad {

namespace {
thread_local std::array<AutocastState, kNumDeviceTypes> g_autocast{};
}  // namespace

AutocastState Autocast::get(DeviceType t) { return g_autocast[size_t(t)]; }
void Autocast::set(DeviceType t, AutocastState s) { g_autocast[size_t(t)] = s; }

}  // namespace cgad
