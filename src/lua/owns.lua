-- Prepended to every script that checks ownership (see store/holder.rs).
-- Whether the lock value v is held with token: the bare token, or the
-- token, a newline and the holder's description.
local function owns(v, token)
  return v == token or (v and string.sub(v, 1, #token + 1) == token .. '\n') or false
end
