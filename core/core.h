// Public header of kvf_core: the shared vocabulary of every module.
#pragma once

#include "core/bytes.h"
#include "core/checksum.h"
#include "core/hlc.h"
#include "core/record.h"
#include "core/status.h"
