-- fxsh.lua: a Wireshark dissector for fxsh's two protocols
-- (netproto/PROTOCOL.md in the fxsh repository):
--
--   fxsh      the chunk protocol over UDP: the 32-byte header of §2.1 and
--             the payloads of §2.2 (REQUEST, RETRY, DATA, ACK, DONE, ERROR);
--             sealed payloads (§2.6) are shown as sealed.
--   fxshline  the master's line protocol over TCP (§1): one tree per line,
--             verb, positional arguments and key=value fields, unescaped.
--
-- Install: copy this one file into Wireshark's personal plugins folder
-- (Help > About Wireshark > Folders > "Personal Lua Plugins"):
--   Linux, macOS: ~/.local/lib/wireshark/plugins/
--   Windows:      %APPDATA%\Wireshark\plugins\
-- or run  tshark -X lua_script:fxsh.lua -r capture.pcap
--
-- Both are found by heuristics (the UDP ports are ephemeral): a datagram
-- that starts with "fx", version 1; a TCP segment that starts with a verb
-- of the line protocol. TCP port 1234 (the master's default) is also
-- registered, and both appear in "Decode As...".
--
-- Filters: fxsh.kind == 4 (ACKs), fxsh.flags.retransmit == 1, fxsh.chunk,
-- fxsh.transfer, fxsh.ack.held == 41, fxsh.ack.missing, fxsh.req.range.first,
-- fxsh.error.code, fxshline.verb == "SEARCH", fxshline.q, fxshline.name ...
-- Expert info flags malformed packets: bad magic, version or kind, a
-- length field that disagrees with the datagram, a CRC32C mismatch, payloads
-- that break §2.2 (a bitmap longer than 8192 bits, a cookie over 64 bytes,
-- more than 128 ranges, ranges out of order ...), and bad escapes in lines.

local fxsh = Proto("fxsh", "fxsh chunk protocol (UDP)")
local fxline = Proto("fxshline", "fxsh master line protocol (TCP)")

-- Bit operations: Lua 5.2 (Wireshark up to 4.2) has bit32, Wireshark also
-- ships LuaBitOp as "bit"; Lua 5.3+ has native operators.
local band, bxor, rshift
if bit32 then
	band, bxor, rshift = bit32.band, bit32.bxor, bit32.rshift
elseif bit then
	local m = 4294967296
	band = function(a, b) return bit.band(a, b) % m end
	bxor = function(a, b) return bit.bxor(a, b) % m end
	rshift = function(a, n) return bit.rshift(a, n) % m end
else
	band, bxor, rshift = load("return function(a,b) return a & b end, function(a,b) return a ~ b end, function(a,n) return a >> n end")()
end

-------------------------------------------------------------------------------
-- The chunk protocol (UDP)

local HEADER_LEN = 32
local MAX_ACK_BITS = 8192
local MAX_RANGES = 128
local MAX_ACK_DELAY = 25000 -- µs, chunk.MaxAnnouncedAckDelay
local MAX_COOKIE = 64
local MAX_ERROR_TEXT = 200
local MIN_CHUNK, MAX_CHUNK = 1024, 64512
local MAX_WINDOW = 8192

local kinds = { [1] = "REQUEST", [2] = "RETRY", [3] = "DATA", [4] = "ACK", [5] = "DONE", [6] = "ERROR" }
local done_reasons = { [0] = "complete", [1] = "cancel", [2] = "echo" }
local error_codes = {
	[1] = "not found", [2] = "busy", [3] = "bad request", [4] = "chunk size not accepted",
	[5] = "unknown transfer", [6] = "unauthorized", [7] = "internal error",
	[8] = "not yet (a partial source has not checked those groups)",
	[9] = "server leaving (it stops serving: the client drops it, or fails at once)",
}

local f = fxsh.fields
f.magic = ProtoField.uint16("fxsh.magic", "Magic", base.HEX)
f.version = ProtoField.uint8("fxsh.version", "Version", base.DEC)
f.kind = ProtoField.uint8("fxsh.kind", "Kind", base.DEC, kinds)
f.flags = ProtoField.uint8("fxsh.flags", "Flags", base.HEX)
f.sealed_flag = ProtoField.bool("fxsh.flags.sealed", "SEALED", 8, nil, 0x01, "payload is ChaCha20-Poly1305 ciphertext + tag")
f.retransmit = ProtoField.bool("fxsh.flags.retransmit", "RETRANSMIT", 8, nil, 0x02, "DATA: this chunk was sent before")
f.ack_now = ProtoField.bool("fxsh.flags.ack_now", "ACK-NOW", 8, nil, 0x04, "DATA: acknowledge at once")
f.tree_flag = ProtoField.bool("fxsh.flags.tree", "TREE", 8, nil, 0x08, "REQUEST: the file's BLAKE3 tree object, not the file (§2.10)")
f.ack_delay_flag = ProtoField.bool("fxsh.flags.ack_delay", "ACK-DELAY", 8, nil, 0x10, "DATA: the sender allows for the ACK delay its REQUEST announced (§2.2, §2.4)")
f.reserved = ProtoField.uint8("fxsh.reserved", "Reserved", base.HEX)
f.length = ProtoField.uint16("fxsh.length", "Payload length", base.DEC)
f.transfer = ProtoField.uint64("fxsh.transfer", "Transfer id", base.HEX)
f.chunk = ProtoField.uint32("fxsh.chunk", "Chunk index", base.DEC)
f.pn = ProtoField.uint64("fxsh.pn", "Packet number", base.DEC)
f.crc = ProtoField.uint32("fxsh.crc", "CRC32C", base.HEX)
f.crc_status = ProtoField.string("fxsh.crc.status", "CRC32C status")

f.req_hash = ProtoField.bytes("fxsh.req.hash", "File hash (BLAKE3-256)")
f.req_size = ProtoField.uint64("fxsh.req.size", "File size", base.DEC)
f.req_chunk_size = ProtoField.uint32("fxsh.req.chunk_size", "Chunk size", base.DEC)
f.req_chunks = ProtoField.uint32("fxsh.req.chunks", "Chunks in the file", base.DEC)
f.req_window = ProtoField.uint32("fxsh.req.window", "Receive window (chunks)", base.DEC)
f.req_cookie_len = ProtoField.uint8("fxsh.req.cookie_len", "Cookie length", base.DEC)
f.req_cookie = ProtoField.bytes("fxsh.req.cookie", "Cookie")
f.req_range_count = ProtoField.uint16("fxsh.req.range_count", "Range count", base.DEC)
f.req_range = ProtoField.string("fxsh.req.range", "Range")
f.req_range_first = ProtoField.uint32("fxsh.req.range.first", "First chunk", base.DEC)
f.req_range_count1 = ProtoField.uint32("fxsh.req.range.count", "Count", base.DEC)
f.req_ack_delay = ProtoField.uint32("fxsh.req.ack_delay", "Max ACK delay (µs)", base.DEC)

f.retry_cookie_len = ProtoField.uint8("fxsh.retry.cookie_len", "Cookie length", base.DEC)
f.retry_cookie = ProtoField.bytes("fxsh.retry.cookie", "Cookie")
f.retry_max_chunk = ProtoField.uint32("fxsh.retry.max_chunk", "Largest chunk size accepted", base.DEC)

f.data = ProtoField.bytes("fxsh.data", "Chunk data")
f.data_len = ProtoField.uint32("fxsh.data.len", "Chunk length", base.DEC)

f.ack_cum = ProtoField.uint32("fxsh.ack.cumulative", "Cumulative (every chunk below is held)", base.DEC)
f.ack_base = ProtoField.uint32("fxsh.ack.base", "Base (in-order point of this transfer)", base.DEC)
f.ack_largest = ProtoField.uint64("fxsh.ack.largest", "Largest packet number received", base.DEC)
f.ack_delay = ProtoField.uint32("fxsh.ack.delay", "ACK delay (µs)", base.DEC)
f.ack_window = ProtoField.uint32("fxsh.ack.window", "Receive window (chunks)", base.DEC)
f.ack_nbits = ProtoField.uint16("fxsh.ack.nbits", "Bitmap length (bits)", base.DEC)
f.ack_bitmap = ProtoField.bytes("fxsh.ack.bitmap", "Bitmap")
f.ack_bits = ProtoField.string("fxsh.ack.bits", "Bitmap, chunk base first (1 held, 0 missing)")
f.ack_held = ProtoField.uint32("fxsh.ack.held", "Held past base", base.DEC)
f.ack_missing = ProtoField.uint32("fxsh.ack.missing", "Missing (a hole)", base.DEC)
f.ack_held_list = ProtoField.string("fxsh.ack.held_list", "Held past base")
f.ack_missing_list = ProtoField.string("fxsh.ack.missing_list", "Missing")

f.done_reason = ProtoField.uint8("fxsh.done.reason", "Reason", base.DEC, done_reasons)

f.error_code = ProtoField.uint16("fxsh.error.code", "Code", base.DEC, error_codes)
f.error_value = ProtoField.uint32("fxsh.error.value", "Value", base.DEC)
f.error_text_len = ProtoField.uint8("fxsh.error.text_len", "Text length", base.DEC)
f.error_text = ProtoField.string("fxsh.error.text", "Text")

f.sealed = ProtoField.bytes("fxsh.sealed", "Sealed payload (ChaCha20-Poly1305 ciphertext)")
f.tag = ProtoField.bytes("fxsh.tag", "Poly1305 tag")
f.trailing = ProtoField.bytes("fxsh.trailing", "Bytes past the payload")

local e_malformed = ProtoExpert.new("fxsh.malformed", "Malformed fxsh packet", expert.group.MALFORMED, expert.severity.ERROR)
local e_crc = ProtoExpert.new("fxsh.crc.bad", "CRC32C mismatch: the receiver drops this packet", expert.group.CHECKSUM, expert.severity.ERROR)
local e_length = ProtoExpert.new("fxsh.length.bad", "Length field disagrees with the datagram: dropped", expert.group.MALFORMED, expert.severity.ERROR)
local e_reserved = ProtoExpert.new("fxsh.reserved.nonzero", "Reserved byte is not 0", expert.group.PROTOCOL, expert.severity.WARN)
local e_retransmit = ProtoExpert.new("fxsh.retransmission", "Retransmission of a chunk", expert.group.SEQUENCE, expert.severity.NOTE)
local e_error = ProtoExpert.new("fxsh.error.reply", "The peer said no (ERROR)", expert.group.RESPONSE_CODE, expert.severity.WARN)
local e_hole = ProtoExpert.new("fxsh.ack.hole", "ACK shows missing chunks (loss or reordering)", expert.group.SEQUENCE, expert.severity.NOTE)
fxsh.experts = { e_malformed, e_crc, e_length, e_reserved, e_retransmit, e_error, e_hole }

-- CRC32C (Castagnoli, reflected polynomial 0x82F63B78), table driven.
local crc_table = {}
for i = 0, 255 do
	local c = i
	for _ = 1, 8 do
		if band(c, 1) == 1 then
			c = bxor(rshift(c, 1), 0x82F63B78)
		else
			c = rshift(c, 1)
		end
	end
	crc_table[i] = c
end

local function crc32c_update(crc, bytes)
	for i = 0, bytes:len() - 1 do
		crc = bxor(crc_table[band(bxor(crc, bytes:get_index(i)), 0xff)], rshift(crc, 8))
	end
	return crc
end

local function crc32c(tvb, n)
	local crc = 0xffffffff
	crc = crc32c_update(crc, tvb:range(0, 28):bytes())
	if n > HEADER_LEN then
		crc = crc32c_update(crc, tvb:range(HEADER_LEN, n - HEADER_LEN):bytes())
	end
	return bxor(crc, 0xffffffff)
end

local function malformed(tree, pinfo, item, msg)
	(item or tree):add_proto_expert_info(e_malformed, msg)
	pinfo.cols.info:append(" [malformed: " .. msg .. "]")
end

-- runs compresses sorted chunk numbers to "3, 5-9, 12".
local function runs(list, most)
	local out, i, n = {}, 1, #list
	while i <= n do
		local j = i
		while j < n and list[j + 1] == list[j] + 1 do j = j + 1 end
		if #out == most then
			out[#out + 1] = "..."
			break
		end
		if j > i then
			out[#out + 1] = list[i] .. "-" .. list[j]
		else
			out[#out + 1] = tostring(list[i])
		end
		i = j + 1
	end
	return table.concat(out, ", ")
end

local function dissect_request(p, pl, tree, pinfo)
	if p:len() < 51 then return malformed(tree, pinfo, nil, "REQUEST shorter than 51 bytes") end
	tree:add(f.req_hash, p(0, 32))
	local size = p(32, 8):uint64()
	tree:add(f.req_size, p(32, 8))
	local csize = p(40, 4):uint()
	local it = tree:add(f.req_chunk_size, p(40, 4))
	if csize < MIN_CHUNK or csize > MAX_CHUNK then malformed(tree, pinfo, it, "chunk size outside [1024, 64512]") end
	local nchunks = 0
	if csize > 0 then
		nchunks = ((size + csize - 1) / csize):tonumber()
		tree:add(f.req_chunks, nchunks):set_generated()
	end
	local win = p(44, 4):uint()
	it = tree:add(f.req_window, p(44, 4))
	if win < 1 or win > MAX_WINDOW then malformed(tree, pinfo, it, "window outside [1, 8192]") end
	local cl = p(48, 1):uint()
	it = tree:add(f.req_cookie_len, p(48, 1))
	if cl > MAX_COOKIE then return malformed(tree, pinfo, it, "cookie longer than 64 bytes") end
	if p:len() < 51 + cl then return malformed(tree, pinfo, nil, "REQUEST truncated in its cookie") end
	if cl > 0 then tree:add(f.req_cookie, p(49, cl)) end
	local off = 49 + cl
	local nr = p(off, 2):uint()
	it = tree:add(f.req_range_count, p(off, 2))
	off = off + 2
	if nr > MAX_RANGES then return malformed(tree, pinfo, it, "more than 128 ranges") end
	if p:len() < off + 8 * nr then return malformed(tree, pinfo, nil, "REQUEST truncated in its ranges") end
	local want, prev_end = {}, 0
	for i = 1, nr do
		local first, count = p(off, 4):uint(), p(off + 4, 4):uint()
		local text = count == 1 and tostring(first) or (first .. "-" .. (first + count - 1))
		local rt = tree:add(f.req_range, p(off, 8), text)
		rt:add(f.req_range_first, p(off, 4))
		rt:add(f.req_range_count1, p(off + 4, 4))
		if count == 0 then malformed(tree, pinfo, rt, "empty range") end
		if i > 1 and first < prev_end then malformed(tree, pinfo, rt, "range overlaps or is out of order") end
		if first + count > nchunks then malformed(tree, pinfo, rt, "range past the file's last chunk") end
		prev_end = first + count
		if #want < 4 then want[#want + 1] = text elseif #want == 4 then want[5] = "..." end
		off = off + 8
	end
	-- Optional trailer (§2.2): the client's max ACK delay; a 0 there is no field.
	if p:len() >= off + 4 and p(off, 4):uint() ~= 0 then
		it = tree:add(f.req_ack_delay, p(off, 4))
		if p(off, 4):uint() > MAX_ACK_DELAY then malformed(tree, pinfo, it, "ACK delay over 25000 µs") end
		off = off + 4
	end
	pinfo.cols.info:append(string.format(" %s cookie=%dB want=%s win=%d", tostring(size) .. "B/" .. csize,
		cl, nr == 0 and "-" or table.concat(want, ","), win))
	return off
end

local function dissect_retry(p, pl, tree, pinfo)
	if p:len() < 1 then return malformed(tree, pinfo, nil, "RETRY without a cookie length") end
	local cl = p(0, 1):uint()
	local it = tree:add(f.retry_cookie_len, p(0, 1))
	if cl == 0 or cl > MAX_COOKIE then malformed(tree, pinfo, it, "cookie length outside [1, 64]") end
	if p:len() < 1 + cl + 4 then return malformed(tree, pinfo, nil, "RETRY truncated") end
	if cl > 0 then tree:add(f.retry_cookie, p(1, cl)) end
	local mc = p(1 + cl, 4):uint()
	it = tree:add(f.retry_max_chunk, p(1 + cl, 4))
	if mc < MIN_CHUNK or mc > MAX_CHUNK then malformed(tree, pinfo, it, "max chunk size outside [1024, 64512]") end
	pinfo.cols.info:append(string.format(" cookie=%dB maxchunk=%d", cl, mc))
	return 1 + cl + 4
end

local function dissect_ack(p, pl, tree, pinfo)
	if p:len() < 26 then return malformed(tree, pinfo, nil, "ACK shorter than 26 bytes") end
	local cum, base = p(0, 4):uint(), p(4, 4):uint()
	tree:add(f.ack_cum, p(0, 4))
	tree:add(f.ack_base, p(4, 4))
	tree:add(f.ack_largest, p(8, 8))
	tree:add(f.ack_delay, p(16, 4))
	local win = p(20, 4):uint()
	local it = tree:add(f.ack_window, p(20, 4))
	if win < 1 or win > MAX_WINDOW then malformed(tree, pinfo, it, "window outside [1, 8192]") end
	local nbits = p(24, 2):uint()
	it = tree:add(f.ack_nbits, p(24, 2))
	if nbits > MAX_ACK_BITS then return malformed(tree, pinfo, it, "bitmap longer than 8192 bits") end
	local nbytes = math.floor((nbits + 7) / 8)
	if p:len() < 26 + nbytes then return malformed(tree, pinfo, nil, "ACK truncated in its bitmap") end
	local held, missing, bits = {}, {}, {}
	if nbytes > 0 then
		local bt = tree:add(f.ack_bitmap, p(26, nbytes))
		local bytes = p(26, nbytes):bytes()
		for k = 0, nbits - 1 do
			local byte = bytes:get_index(math.floor(k / 8))
			local set = math.floor(byte / 2 ^ (k % 8)) % 2 == 1
			bits[#bits + 1] = set and "1" or "0"
			if set then held[#held + 1] = base + k else missing[#missing + 1] = base + k end
		end
		local r = nbits % 8
		if r ~= 0 and math.floor(bytes:get_index(nbytes - 1) / 2 ^ r) ~= 0 then
			malformed(tree, pinfo, bt, "bits set past the bitmap's end")
		end
		tree:add(f.ack_bits, p(26, nbytes), table.concat(bits)):set_generated()
		local hl = tree:add(f.ack_held_list, p(26, nbytes), #held == 0 and "none" or runs(held, 64))
		hl:set_generated()
		for _, c in ipairs(held) do hl:add(f.ack_held, p(26, nbytes), c):set_generated() end
		local ml = tree:add(f.ack_missing_list, p(26, nbytes), #missing == 0 and "none" or runs(missing, 64))
		ml:set_generated()
		for _, c in ipairs(missing) do ml:add(f.ack_missing, p(26, nbytes), c):set_generated() end
		if #missing > 0 and #held > 0 then tree:add_proto_expert_info(e_hole, #missing .. " chunks missing past base " .. base) end
	end
	local info = string.format(" cum=%d base=%d", cum, base)
	if nbits > 0 then
		local shown = table.concat(bits, "", 1, math.min(#bits, 32))
		if #bits > 32 then shown = shown .. "..." end
		info = info .. " bits=" .. shown
		if #held > 0 then info = info .. " held=" .. runs(held, 3) end
	end
	pinfo.cols.info:append(info .. " win=" .. win)
	return 26 + nbytes
end

local function dissect_done(p, pl, tree, pinfo)
	if p:len() < 1 then return malformed(tree, pinfo, nil, "DONE without a reason") end
	local r = p(0, 1):uint()
	local it = tree:add(f.done_reason, p(0, 1))
	if r > 2 then malformed(tree, pinfo, it, "unknown reason") end
	pinfo.cols.info:append(" " .. (done_reasons[r] or ("reason " .. r)))
	return 1
end

local function dissect_error(p, pl, tree, pinfo)
	if p:len() < 7 then return malformed(tree, pinfo, nil, "ERROR shorter than 7 bytes") end
	local code, value, tl = p(0, 2):uint(), p(2, 4):uint(), p(6, 1):uint()
	local it = tree:add(f.error_code, p(0, 2))
	if not error_codes[code] then malformed(tree, pinfo, it, "unknown error code") end
	tree:add(f.error_value, p(2, 4))
	it = tree:add(f.error_text_len, p(6, 1))
	if tl > MAX_ERROR_TEXT then return malformed(tree, pinfo, it, "text longer than 200 bytes") end
	if p:len() < 7 + tl then return malformed(tree, pinfo, nil, "ERROR truncated in its text") end
	local text = ""
	if tl > 0 then
		text = p(7, tl):string(ENC_UTF_8)
		tree:add(f.error_text, p(7, tl), text)
	end
	tree:add_proto_expert_info(e_error, (error_codes[code] or "code " .. code) .. (tl > 0 and (": " .. text) or ""))
	pinfo.cols.info:append(string.format(" %s", error_codes[code] or ("code " .. code)))
	if value ~= 0 then pinfo.cols.info:append(" value=" .. value) end
	if tl > 0 then pinfo.cols.info:append(' "' .. text .. '"') end
	return 7 + tl
end

local payloads = { [1] = dissect_request, [2] = dissect_retry, [4] = dissect_ack, [5] = dissect_done, [6] = dissect_error }

local function dissect_chunk(tvb, pinfo, root)
	local n = tvb:len()
	pinfo.cols.protocol:set("fxsh")
	local tree = root:add(fxsh, tvb())
	if n < HEADER_LEN then
		malformed(tree, pinfo, nil, "shorter than the 32-byte header")
		return n
	end
	local kind, flags = tvb(3, 1):uint(), tvb(4, 1):uint()
	local plen = tvb(6, 2):uint()
	local sealed = flags % 2 == 1
	local retrans = math.floor(flags / 2) % 2 == 1
	local acknow = math.floor(flags / 4) % 2 == 1
	local tree_obj = math.floor(flags / 8) % 2 == 1

	local h = tree:add(fxsh, tvb(0, HEADER_LEN), "Header")
	local it = h:add(f.magic, tvb(0, 2))
	if tvb(0, 2):uint() ~= 0x6678 then malformed(tree, pinfo, it, "bad magic") end
	it = h:add(f.version, tvb(2, 1))
	if tvb(2, 1):uint() ~= 1 then malformed(tree, pinfo, it, "unsupported version") end
	it = h:add(f.kind, tvb(3, 1))
	if not kinds[kind] then malformed(tree, pinfo, it, "unknown kind") end
	local ft = h:add(f.flags, tvb(4, 1))
	ft:add(f.sealed_flag, tvb(4, 1))
	ft:add(f.retransmit, tvb(4, 1))
	ft:add(f.ack_now, tvb(4, 1))
	ft:add(f.tree_flag, tvb(4, 1))
	ft:add(f.ack_delay_flag, tvb(4, 1))
	it = h:add(f.reserved, tvb(5, 1))
	if tvb(5, 1):uint() ~= 0 then it:add_proto_expert_info(e_reserved) end
	it = h:add(f.length, tvb(6, 2))
	local lenok = HEADER_LEN + plen == n
	if not lenok then it:add_proto_expert_info(e_length, string.format("length field %d, datagram carries %d payload bytes", plen, n - HEADER_LEN)) end
	it = h:add(f.transfer, tvb(8, 8))
	if tvb(8, 8):uint64() == UInt64(0) then malformed(tree, pinfo, it, "zero transfer id") end
	h:add(f.chunk, tvb(16, 4))
	h:add(f.pn, tvb(20, 8))
	local crc = tvb(28, 4):uint()
	local ct = h:add(f.crc, tvb(28, 4))
	local crcok = nil
	if sealed then
		-- §2.6: a sealed packet carries 0 here; the AEAD tag covers what
		-- the CRC would, and a receiver drops one whose field is not 0.
		crcok = crc == 0
		ct:add(f.crc_status, tvb(28, 4), crcok and "not used (sealed)" or "bad (not 0 in a sealed packet)"):set_generated()
		if not crcok then ct:add_proto_expert_info(e_crc, "CRC32C field is not 0 in a sealed packet: dropped") end
	elseif HEADER_LEN + plen <= n then
		crcok = crc32c(tvb, HEADER_LEN + plen) == crc
		ct:add(f.crc_status, tvb(28, 4), crcok and "good" or "bad"):set_generated()
		if not crcok then ct:add_proto_expert_info(e_crc) end
	end

	local name = kinds[kind] or ("KIND(" .. kind .. ")")
	local xfer = tvb(8, 8):uint64():tohex():sub(-4)
	pinfo.cols.info:set(name .. " t=" .. xfer)
	if kind == 3 then
		pinfo.cols.info:append(" chunk=" .. tvb(16, 4):uint())
		if retrans then
			pinfo.cols.info:append(" retransmit")
			tree:add_proto_expert_info(e_retransmit, "chunk " .. tvb(16, 4):uint() .. " sent again")
		end
		if acknow then pinfo.cols.info:append(" ack-now") end
	end
	if tree_obj then pinfo.cols.info:append(" tree") end
	tree:append_text(", " .. name .. (tree_obj and " (tree object)" or "") .. (sealed and " (sealed)" or ""))

	local avail = math.min(plen, n - HEADER_LEN)
	if avail > 0 or kind ~= 3 then
		local p = tvb(HEADER_LEN, avail)
		local pt = tree:add(fxsh, p, name .. " payload")
		if sealed then
			if avail < 16 then
				malformed(pt, pinfo, nil, "sealed payload shorter than its 16-byte tag")
			else
				if avail > 16 then pt:add(f.sealed, tvb(HEADER_LEN, avail - 16)) end
				pt:add(f.tag, tvb(HEADER_LEN + avail - 16, 16))
				pt:append_text(" (sealed: readable only with the shared key)")
			end
			pinfo.cols.info:append(" (sealed)")
		elseif kind == 3 then
			pt:add(f.data, p)
			pt:add(f.data_len, avail):set_generated()
			pinfo.cols.info:append(" len=" .. avail)
		elseif payloads[kind] and lenok then
			local used = payloads[kind](p:tvb(), p, pt, pinfo)
			if used and used < avail then
				malformed(pt, pinfo, pt:add(f.trailing, tvb(HEADER_LEN + used, avail - used)), "bytes past the payload")
			end
		end
	end
	if crcok == false then pinfo.cols.info:append(sealed and " [CRC32C field not 0]" or " [CRC32C mismatch]") end
	return n
end

function fxsh.dissector(tvb, pinfo, root)
	return dissect_chunk(tvb, pinfo, root)
end

local function heur_chunk(tvb, pinfo, root)
	if tvb:len() < HEADER_LEN or tvb(0, 2):uint() ~= 0x6678 or tvb(2, 1):uint() ~= 1 then return false end
	dissect_chunk(tvb, pinfo, root)
	pinfo.conversation = fxsh
	return true
end

fxsh:register_heuristic("udp", heur_chunk)
DissectorTable.get("udp.port"):add_for_decode_as(fxsh)

-------------------------------------------------------------------------------
-- The line protocol (TCP)

local MAX_LINE = 4096
local verbs = {}
for v in string.gmatch("HELLO HI AUTH REGISTER F END OK PING PONG LIST SEARCH PEERS FOUND NOT P ERR BYE OFFER ACCEPT REFUSE DONE", "%S+") do
	verbs[v] = true
end

local l = fxline.fields
l.line = ProtoField.string("fxshline.line", "Line")
l.verb = ProtoField.string("fxshline.verb", "Verb")
l.arg = ProtoField.string("fxshline.arg", "Argument")
l.field = ProtoField.string("fxshline.field", "Field")
l.key = ProtoField.string("fxshline.key", "Key")
l.value = ProtoField.string("fxshline.value", "Value")
l.err_code = ProtoField.uint16("fxshline.err.code", "Error code", base.DEC)
l.err_text = ProtoField.string("fxshline.err.text", "Error text")
-- A named filter field for each key the protocol defines (the value
-- unescaped), e.g. fxshline.q == "notes", fxshline.name contains "pdf".
local keys = {}
for k in string.gmatch("role nonce mac hb ttl maxline maxname maxfiles addr n name size type mtime hash servers glob max q more files since seen offer to from by reason error", "%S+") do
	keys[k] = ProtoField.string("fxshline." .. k, k)
	l["k_" .. k] = keys[k]
end

local le_escape = ProtoExpert.new("fxshline.bad_escape", "Bad escape in a value", expert.group.MALFORMED, expert.severity.ERROR)
local le_long = ProtoExpert.new("fxshline.too_long", "Line longer than MaxLine (4096 bytes)", expert.group.MALFORMED, expert.severity.ERROR)
local le_err = ProtoExpert.new("fxshline.err", "The peer refused (ERR)", expert.group.RESPONSE_CODE, expert.severity.WARN)
local le_syntax = ProtoExpert.new("fxshline.syntax", "Malformed line", expert.group.MALFORMED, expert.severity.ERROR)
fxline.experts = { le_escape, le_long, le_err, le_syntax }

local simple_escapes = { s = " ", n = "\n", r = "\r", t = "\t", ["\\"] = "\\", e = "=" }

-- unescape returns the value and nil, or the raw text and an error.
local function unescape(s)
	local out, i, n = {}, 1, #s
	while i <= n do
		local c = s:sub(i, i)
		if c ~= "\\" then
			out[#out + 1] = c
			i = i + 1
		else
			local e = s:sub(i + 1, i + 1)
			if simple_escapes[e] then
				out[#out + 1] = simple_escapes[e]
				i = i + 2
			elseif e == "x" and s:sub(i + 2, i + 3):match("^%x%x$") then
				local v = tonumber(s:sub(i + 2, i + 3), 16)
				if v >= 0x20 and v ~= 0x7f then return s, "\\x of a printable character" end
				out[#out + 1] = string.char(v)
				i = i + 4
			else
				return s, "unknown escape \\" .. e
			end
		end
	end
	return table.concat(out), nil
end

local function dissect_line(tvb, off, len, pinfo, root, info)
	local raw = tvb(off, len):string(ENC_UTF_8)
	local text = raw:gsub("\r?\n$", "")
	local tree = root:add(fxline, tvb(off, len))
	tree:add(l.line, tvb(off, len), text)
	tree:append_text(": " .. (#text > 60 and text:sub(1, 60) .. "..." or text))
	if len > MAX_LINE then tree:add_proto_expert_info(le_long) end
	local tokens = {}
	for t in text:gmatch("[^ ]+") do tokens[#tokens + 1] = t end
	local verb = tokens[1] or ""
	local vt = tree:add(l.verb, tvb(off, math.min(#verb, len)), verb)
	if not verb:match("^%a[%w_]*$") then vt:add_proto_expert_info(le_syntax, "verb must start with a letter") end
	info[#info + 1] = (#text > 70 and text:sub(1, 70) .. "..." or text)
	if verb == "ERR" then
		local code, msg = text:match("^ERR (%d+) ?(.*)$")
		if code then
			tree:add(l.err_code, tvb(off, len), tonumber(code))
			tree:add(l.err_text, tvb(off, len), msg)
			tree:add_proto_expert_info(le_err, "ERR " .. code .. " " .. msg)
		else
			tree:add_proto_expert_info(le_syntax, "ERR without a code")
		end
		return
	end
	local pos = off + #verb + 1
	for i = 2, #tokens do
		local t = tokens[i]
		local start = raw:find(t, pos - off, true)
		local r = tvb(off + (start or 1) - 1, math.min(#t, len))
		local k, v = t:match("^([^=]*)=(.*)$")
		if k then
			local val, err = unescape(v)
			local ft = tree:add(l.field, r, k .. "=" .. val)
			ft:add(l.key, r, k)
			ft:add(l.value, r, val)
			if keys[k] then tree:add(keys[k], r, val) end
			if err then ft:add_proto_expert_info(le_escape, err) end
			if not k:match("^[a-z][a-z0-9_]*$") then ft:add_proto_expert_info(le_syntax, "bad key " .. k) end
		else
			local val, err = unescape(t)
			local at = tree:add(l.arg, r, val)
			if err then at:add_proto_expert_info(le_escape, err) end
		end
		if start then pos = off + start + #t end
	end
end

local function dissect_lines(tvb, pinfo, root)
	local n = tvb:len()
	pinfo.cols.protocol:set("fxshline")
	local off, info = 0, {}
	while off < n do
		local bytes = tvb(off, n - off):bytes()
		local nl = nil
		for i = 0, bytes:len() - 1 do
			if bytes:get_index(i) == 10 then nl = i break end
		end
		if not nl then
			if n - off > MAX_LINE then
				dissect_line(tvb, off, n - off, pinfo, root, info)
				break
			end
			-- a line split over segments: ask TCP for more
			pinfo.desegment_offset = off
			pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
			break
		end
		dissect_line(tvb, off, nl + 1, pinfo, root, info)
		off = off + nl + 1
	end
	pinfo.cols.info:set(table.concat(info, " | "))
	return n
end

function fxline.dissector(tvb, pinfo, root)
	return dissect_lines(tvb, pinfo, root)
end

local function heur_line(tvb, pinfo, root)
	local n = math.min(tvb:len(), 17)
	if n < 2 then return false end
	local head = tvb(0, n):string()
	local verb = head:match("^(%u+)[ \r\n]") or head:match("^(%u+)$")
	if not verb or not verbs[verb] then return false end
	dissect_lines(tvb, pinfo, root)
	pinfo.conversation = fxline
	return true
end

fxline:register_heuristic("tcp", heur_line)
DissectorTable.get("tcp.port"):add(1234, fxline)
