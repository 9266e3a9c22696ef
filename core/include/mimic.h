/* mimic — everything a host simulation needs, in one include: `#include <mimic.h>`
 * (docs/embedding.md). Link with `pkg-config --cflags --libs mimic`, or in CMake
 * find_package(mimic) + target_link_libraries(app mimic::mimic).
 * Lua scripts called from a host are a separate library: mimic/script.h (mimic-lua). */
#ifndef MIMIC_H
#define MIMIC_H

#include "mimic/base.h"
#include "mimic/tensor.h"
#include "mimic/model.h"
#include "mimic/modelfile.h"
#include "mimic/embed.h"
#include "mimic/guard.h"
#include "mimic/profile.h"

#endif
