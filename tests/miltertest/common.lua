-- tests/miltertest/common.lua — shared steps for the miltertest scripts (run by run.py).
-- The milter under test listens on $MILTER_SOCKET; the scripts speak the real milter protocol.
local M = {}

function M.connect()
  mt.set_timeout(30)
  local conn = mt.connect(os.getenv("MILTER_SOCKET"), 40, 0.25)
  assert(conn, "cannot connect to " .. tostring(os.getenv("MILTER_SOCKET")))
  assert(mt.conninfo(conn, "app.bank.example", "127.0.0.1") == nil, "conninfo failed")
  assert(mt.getreply(conn) == SMFIR_CONTINUE, "connect not continued")
  -- no HELO: sealmilter negotiates that step away (SMFIP_NOHELO), so it is not sent
  return conn
end

function M.envelope(conn, qid, from, rcpts)
  assert(mt.macro(conn, SMFIC_MAIL, "i", qid) == nil)
  assert(mt.mailfrom(conn, from) == nil)
  assert(mt.getreply(conn) == SMFIR_CONTINUE, "MAIL not continued")
  local replies = {}
  for _, r in ipairs(rcpts) do
    assert(mt.rcptto(conn, r) == nil)
    replies[r] = mt.getreply(conn)
  end
  return replies
end

-- sealmilter negotiates SMFIP_NR_HDR, SMFIP_NR_BODY and SMFIP_NOEOH: headers and body chunks
-- get no reply and no end-of-headers is sent; the verdict comes at end of message.
function M.message(conn, qid, headers, body)
  for _, h in ipairs(headers) do
    assert(mt.header(conn, h[1], h[2]) == nil, "header " .. h[1] .. " not sent")
  end
  assert(mt.bodystring(conn, body) == nil, "body not sent")
  assert(mt.eom(conn) == nil)
  return mt.getreply(conn)
end

return M
