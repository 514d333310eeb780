"""The budget in Redis (EXEC_REDIS_URL): every API replica and worker draws from the same counts.
Each take is one Lua script, atomic on the server: check the pause, check every window (and the
next one in a window's last `grace` seconds), then count the weight in all of them or none."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from execution_service.exchanges.budget.store import Slot

_TAKE = """
local now = tonumber(ARGV[1])
local paused = tonumber(redis.call('GET', KEYS[1]) or '0')
if paused > now then return tostring(paused - now) end
local charge = {}
for i = 2, #KEYS do
  local limit = tonumber(ARGV[4 * i - 6])
  local span = tonumber(ARGV[4 * i - 5])
  local weight = tonumber(ARGV[4 * i - 4])
  local grace = tonumber(ARGV[4 * i - 3])
  local index = math.floor(now / span)
  local left = (index + 1) * span - now
  local last = index
  if left < grace then last = index + 1 end
  for w = index, last do
    local key = KEYS[i] .. ':' .. w
    if tonumber(redis.call('GET', key) or '0') + weight > limit then
      return tostring(left + 0.001)
    end
    table.insert(charge, {key, span, weight})
  end
end
for _, c in ipairs(charge) do
  redis.call('INCRBY', c[1], c[3])
  redis.call('PEXPIRE', c[1], math.ceil(c[2] * 2000) + 1000)
end
return '0'
"""

# Raise a key to ARGV[1] (never lower it), expiring in ARGV[2] ms: a window's count floored at
# the venue's own count, and a pause that only a later pause extends.
_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"""


class RedisStore:
    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)
        self._clock = clock
        self._take = self._redis.register_script(_TAKE)
        self._raise = self._redis.register_script(_RAISE)

    async def take(self, pause_key: str, slots: Sequence[Slot], weight: int) -> float:
        args: list[Any] = [repr(self._clock())]
        for slot in slots:  # ARGV: now, then (limit, seconds, units, grace) per window
            args += [slot.limit, repr(slot.seconds), slot.cost(weight), repr(slot.grace)]
        wait = await self._take(keys=[pause_key, *(s.key for s in slots)], args=args)
        return float(wait)  # not money

    async def pause(self, pause_key: str, until: float) -> None:
        ms = max(1, int((until - self._clock()) * 1000))
        await self._raise(keys=[pause_key], args=[repr(until), ms])

    async def paused_until(self, pause_key: str) -> float:
        value = await self._redis.get(pause_key)
        until = float(value) if value is not None else 0.0  # not money
        return until if until > self._clock() else 0.0

    async def floor(self, slot: Slot, used: int) -> None:
        index = int(self._clock() // slot.seconds)
        ms = int(slot.seconds * 2000) + 1000
        await self._raise(keys=[f"{slot.key}:{index}"], args=[used, ms])

    async def used(self, slot: Slot) -> int:
        value = await self._redis.get(f"{slot.key}:{int(self._clock() // slot.seconds)}")
        return int(value) if value is not None else 0

    async def charge(self, slot: Slot, units: int) -> None:
        key = f"{slot.key}:{int(self._clock() // slot.seconds)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(key, units)
            pipe.pexpire(key, int(slot.seconds * 2000) + 1000)
            await pipe.execute()

    def clock(self) -> float:
        return self._clock()

    async def close(self) -> None:
        await self._redis.aclose()


__all__ = ["RedisStore"]
