# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""C loops for capture files: index records, build records, account a batch.

``ovnsim.capture.pcap`` and ``ovnsim.capture.replay`` do the Python work once per *batch*
(tens of thousands of frames); everything done once per *frame* is here:

* :func:`index_pcap` / :func:`index_pcapng` walk the records of a classic
  pcap or the packet blocks (EPB, SPB, OPB) of a pcapng section held in a
  byte buffer and fill flat arrays: data offset, captured length, original
  length, timestamp in nanoseconds since the epoch;
* :func:`build_pcap_records` turns a :class:`~ovnsim.datapath.engine.BatchResult`'s
  outputs into classic pcap records grouped per port (one contiguous run of
  records per port, in frame order);
* :func:`account_batch` classifies every frame of a batch (delivered,
  exited, dropped) and adds up the summary counters;
* :func:`build_drop_epbs` writes one pcapng Enhanced Packet Block, with
  ``opt_comment`` options, per dropped frame.

Like ``_fastpath``, the loops never raise: they stop with a status code and
the position where they stopped, and the Python caller turns the code into
an error that names the file, the record and the byte offset.

Layouts.  Input arrays are ``array.array``\\ s with the type codes of
:class:`~ovnsim.datapath.engine.BatchResult` (``out_frame``/``out_port`` ``"i"``,
``out_kind``/``drop_reason`` ``"b"``, ``drop_stage`` ``"h"``,
``out_start`` ``"q"``); the reader's arrays are offsets ``"q"``, lengths
``"i"``, original lengths ``"I"`` and timestamps ``"q"`` (nanoseconds).
Every multi-byte field written to a file is little-endian, whatever the host.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

# Status codes of the indexers (the Python side names them).
cdef enum:
    ST_NEED_MORE = 0  # the next record does not fit in the buffer (or the buffer ended)
    ST_FULL = 1  # the output arrays are full
    ST_BAD_CAPLEN = 2  # captured length over the snaplen / 256 KiB limit (detail: caplen)
    ST_OTHER_BLOCK = 3  # pcapng: a block that is not a packet block starts at pos
    ST_BAD_BLOCK_LEN = 4  # pcapng: block length < minimum or not a multiple of 4 (detail: length)
    ST_BAD_TRAILER = 5  # pcapng: the trailing block length differs from the leading one
    ST_BAD_IFACE = 6  # pcapng: the interface id names no IDB of this section (detail: id)
    ST_NOT_ETHERNET = 7  # pcapng: the packet's interface is not Ethernet or Linux cooked (detail: id)
    ST_CAPLEN_OVER_BLOCK = 8  # pcapng: the captured length runs past the block (detail: caplen)

NEED_MORE = ST_NEED_MORE
FULL = ST_FULL
BAD_CAPLEN = ST_BAD_CAPLEN
OTHER_BLOCK = ST_OTHER_BLOCK
BAD_BLOCK_LEN = ST_BAD_BLOCK_LEN
BAD_TRAILER = ST_BAD_TRAILER
BAD_IFACE = ST_BAD_IFACE
NOT_ETHERNET = ST_NOT_ETHERNET
CAPLEN_OVER_BLOCK = ST_CAPLEN_OVER_BLOCK

cdef enum:
    PCAP_REC_HDR = 16
    EPB_HDR = 28  # type, length, interface, ts high, ts low, caplen, origlen
    LINKTYPE_ETHERNET = 1
    # frame_state bits (account_batch)
    REACHED_PORT = 1  # some copy left on a port that is not localnet
    REACHED_LOCALNET = 2  # some copy left on a localnet port
    FIRST_DROP_SEEN = 4

cdef enum:
    C_DELIVERED = 0
    C_EXITED = 1
    C_DROPPED = 2

#: Indices of ``class_counts`` (:func:`account_batch`).
DELIVERED = C_DELIVERED
EXITED = C_EXITED
DROPPED = C_DROPPED

cdef int64_t NS = 1000000000
cdef uint64_t NS_U = 1000000000
# The latest timestamp every file ovnsim writes can hold: classic pcap keeps the seconds in
# 32 bits (2106-02-07 06:28:15 UTC).  Timestamps outside [0, MAX_TS_NS] are clamped, and counted.
cdef int64_t MAX_TS = 4294967296 * 1000000000 - 1
cdef int64_t INT64_MAX_ = 0x7fffffffffffffff
#: The latest timestamp ovnsim keeps, in nanoseconds since the epoch (2106-02-07 06:28:15.999999999 UTC).
MAX_TS_NS = MAX_TS


cdef inline uint32_t rd32(const uint8_t *p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint32_t rd16(const uint8_t *p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 8) | p[1]
    return p[0] | (<uint32_t>p[1] << 8)


cdef inline void wr32(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xff
    p[1] = (v >> 8) & 0xff
    p[2] = (v >> 16) & 0xff
    p[3] = v >> 24


cdef inline void wr16(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xff
    p[1] = (v >> 8) & 0xff


cdef inline Py_ssize_t pad4(Py_ssize_t n) noexcept nogil:
    return (n + 3) & ~(<Py_ssize_t>3)


cdef inline int64_t clamp_ts(int64_t ns, int64_t *clamped) noexcept nogil:
    if ns < 0:
        clamped[0] += 1
        return 0
    if ns > MAX_TS:
        clamped[0] += 1
        return MAX_TS
    return ns


cdef inline void strip_fcs(uint32_t *caplen, uint32_t *origlen, uint32_t fcslen) noexcept nogil:
    """Drop the trailing FCS: from the wire length, and from the captured bytes where they reach it."""
    cdef uint32_t frame = origlen[0] - fcslen if origlen[0] > fcslen else 0
    if caplen[0] > frame:
        caplen[0] = frame
    origlen[0] = frame


cdef inline int64_t units_to_ns(uint64_t t, uint64_t per_sec, int64_t offset_ns, int64_t *clamped) noexcept nogil:
    """A pcapng timestamp in units of 1/per_sec seconds, as nanoseconds, clamped to [0, MAX_TS].

    Never overflows: the whole seconds are bounded first (2^33 s is past
    MAX_TS, and 2^33 s in nanoseconds still fits in 63 bits), then the
    offset (any int64) is added with a check.  A clamped value adds 1 to
    ``clamped[0]``.
    """
    cdef uint64_t sec, frac
    cdef int64_t ns
    if per_sec == 1000000 and t < (<uint64_t>1 << 52):  # the default if_tsresol, by far the most common
        ns = <int64_t>(t * 1000)
    else:
        sec = t // per_sec
        frac = t % per_sec
        if sec >= (<uint64_t>1 << 33):
            ns = INT64_MAX_
        elif per_sec <= NS_U and NS_U % per_sec == 0:
            ns = <int64_t>(sec * NS_U + frac * (NS_U // per_sec))
        else:
            # 2^-n or finer than 1 ns: the fraction through long double (64-bit mantissa)
            ns = <int64_t>(sec * NS_U) + <int64_t>((<long double>frac) * NS_U / per_sec)
    if ns != INT64_MAX_:
        if offset_ns > 0 and ns > INT64_MAX_ - offset_ns:
            ns = INT64_MAX_
        else:
            ns += offset_ns
    return clamp_ts(ns, clamped)


def index_pcap(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint big, int64_t sub_ns,
               uint32_t limit, uint32_t fcslen, int64_t[::1] offsets, int32_t[::1] lengths, uint32_t[::1] origlens,
               int64_t[::1] stamps):
    """Index classic pcap records in ``buf[pos:end]``.

    ``big``: the file is big-endian; ``sub_ns``: nanoseconds per unit of the
    sub-second field (1000 for microsecond files, 1 for nanosecond ones);
    ``limit``: the largest captured length taken as sane; ``fcslen``: bytes
    of frame check sequence each frame ends with on the wire (stripped:
    the FCS is not part of the frame OVN sees).  Fills the four
    arrays from index 0 and returns ``(n, pos, status, snaplen_truncated,
    detail)``: ``n`` records indexed, ``pos`` where the next record starts,
    why it stopped (``NEED_MORE``, ``FULL``, ``BAD_CAPLEN`` with the
    offending length as ``detail``), how many records had
    caplen < origlen and how many timestamps were clamped to
    [0, ``MAX_TS_NS``].
    """
    cdef Py_ssize_t n = 0, cap = offsets.shape[0]
    cdef int status = ST_FULL
    cdef int64_t truncated = 0, detail = 0, clamped = 0
    cdef uint32_t caplen, origlen
    cdef const uint8_t *p
    if end > buf.shape[0] or pos < 0:
        raise ValueError("index_pcap: pos/end outside the buffer")
    if lengths.shape[0] < cap or origlens.shape[0] < cap or stamps.shape[0] < cap:
        raise ValueError("index_pcap: output arrays shorter than offsets")
    with nogil:
        while n < cap:
            if end - pos < PCAP_REC_HDR:
                status = ST_NEED_MORE
                break
            p = &buf[pos]
            caplen = rd32(p + 8, big)
            if caplen > limit:
                status = ST_BAD_CAPLEN
                detail = caplen
                break
            if end - pos - PCAP_REC_HDR < <Py_ssize_t>caplen:
                status = ST_NEED_MORE
                break
            origlen = rd32(p + 12, big)
            if fcslen:
                strip_fcs(&caplen, &origlen, fcslen)
            stamps[n] = clamp_ts(<int64_t>rd32(p, big) * NS + <int64_t>rd32(p + 4, big) * sub_ns, &clamped)
            offsets[n] = pos + PCAP_REC_HDR
            lengths[n] = caplen
            origlens[n] = origlen
            if caplen < origlen:
                truncated += 1
            pos += PCAP_REC_HDR + rd32(p + 8, big)
            n += 1
    return n, pos, status, truncated, detail, clamped


def index_pcapng(const uint8_t[::1] buf, Py_ssize_t pos, Py_ssize_t end, bint big,
                 const int32_t[::1] if_linktype, const uint32_t[::1] if_limit,
                 const uint64_t[::1] if_per_sec, const int64_t[::1] if_offset_ns, const uint32_t[::1] if_snaplen,
                 const uint32_t[::1] if_fcslen, int64_t[::1] offsets, int32_t[::1] lengths, uint32_t[::1] origlens,
                 int64_t[::1] stamps, int32_t if_base=0, int32_t[::1] ifaces=None):
    """Index the packet blocks (EPB, SPB, OPB) of one pcapng section in ``buf[pos:end]``.

    The ``if_*`` arrays describe the section's interfaces, by interface id:
    link type, the largest sane captured length, timestamp units per second
    (``if_tsresol``), ``if_tsoffset`` in nanoseconds, and the IDB's snaplen
    (0: none; an SPB's captured length is bounded by interface 0's), and
    ``if_fcslen`` (bytes of FCS each frame ends with: stripped).
    Stops at the first block that is not a packet block (``OTHER_BLOCK``:
    section headers, interface descriptions and the rest are parsed by the
    Python caller) and returns ``(n, pos, status, snaplen_truncated,
    detail, clamped)`` as :func:`index_pcap`.  ``ifaces`` (optional) gets
    each frame's interface as ``if_base`` + its id in the section.  An SPB carries no timestamp: 0.
    """
    cdef Py_ssize_t n = 0, cap = offsets.shape[0], nif = if_linktype.shape[0]
    cdef int status = ST_FULL
    cdef int64_t truncated = 0, detail = 0, clamped = 0
    cdef uint32_t btype, blen, caplen, origlen, iface, avail
    cdef uint64_t t
    cdef Py_ssize_t data_at
    cdef const uint8_t *p
    if end > buf.shape[0] or pos < 0:
        raise ValueError("index_pcapng: pos/end outside the buffer")
    if (if_limit.shape[0] < nif or if_per_sec.shape[0] < nif or if_offset_ns.shape[0] < nif
            or if_snaplen.shape[0] < nif or if_fcslen.shape[0] < nif):
        raise ValueError("index_pcapng: interface arrays of different lengths")
    if lengths.shape[0] < cap or origlens.shape[0] < cap or stamps.shape[0] < cap:
        raise ValueError("index_pcapng: output arrays shorter than offsets")
    cdef bint has_ifaces = ifaces is not None
    if has_ifaces and ifaces.shape[0] < cap:
        raise ValueError("index_pcapng: ifaces shorter than offsets")
    with nogil:
        while n < cap:
            if end - pos < 8:
                status = ST_NEED_MORE
                break
            p = &buf[pos]
            btype = rd32(p, big)
            if btype != 6 and btype != 3 and btype != 2:
                status = ST_OTHER_BLOCK
                break
            blen = rd32(p + 4, big)
            if blen % 4 != 0 or blen < (16 if btype == 3 else 32):
                status = ST_BAD_BLOCK_LEN
                detail = blen
                break
            if btype != 3 and end - pos >= EPB_HDR:
                # A corrupt length is caught before the block is buffered.
                caplen = rd32(p + 20, big)
                if caplen > blen - 32:
                    status = ST_CAPLEN_OVER_BLOCK
                    detail = caplen
                    break
            if end - pos < <Py_ssize_t>blen:
                status = ST_NEED_MORE
                break
            if rd32(p + blen - 4, big) != blen:
                status = ST_BAD_TRAILER
                detail = rd32(p + blen - 4, big)
                break
            if btype == 3:  # Simple Packet Block: interface 0, no timestamp
                iface = 0
                origlen = rd32(p + 8, big)
                avail = blen - 16
                caplen = origlen if origlen < avail else avail
                if nif > 0 and if_snaplen[0] != 0 and caplen > if_snaplen[0]:
                    caplen = if_snaplen[0]
                t = 0
                data_at = 12
            else:
                iface = rd32(p + 8, big) if btype == 6 else rd16(p + 8, big)
                t = (<uint64_t>rd32(p + 12, big) << 32) | rd32(p + 16, big)
                caplen = rd32(p + 20, big)
                origlen = rd32(p + 24, big)
                data_at = EPB_HDR
            if iface >= nif:
                status = ST_BAD_IFACE
                detail = iface
                break
            if if_linktype[iface] != LINKTYPE_ETHERNET and if_linktype[iface] != 113 and if_linktype[iface] != 276:
                status = ST_NOT_ETHERNET
                detail = iface
                break
            if caplen > if_limit[iface]:
                status = ST_BAD_CAPLEN
                detail = caplen
                break
            if if_fcslen[iface]:
                strip_fcs(&caplen, &origlen, if_fcslen[iface])
            stamps[n] = 0 if btype == 3 else units_to_ns(t, if_per_sec[iface], if_offset_ns[iface], &clamped)
            if has_ifaces:
                ifaces[n] = if_base + <int32_t>iface
            offsets[n] = pos + data_at
            lengths[n] = caplen
            origlens[n] = origlen
            if caplen < origlen:
                truncated += 1
            pos += blen
            n += 1
    return n, pos, status, truncated, detail, clamped


def snaplen_cuts(const int32_t[::1] lengths, const uint32_t[::1] origlens):
    """``(wire, n)`` for a batch with frames a snaplen cut (origlen > caplen), else None.

    ``wire[i]``: frame i's length on the wire (``array('q')``, what the
    engine's ``origlens`` takes); ``n``: how many frames are cut.  One C
    pass; the common whole-frame batch costs no more.
    """
    cdef Py_ssize_t n = lengths.shape[0], i, first = -1, count = 0
    cdef int64_t[::1] w
    if origlens.shape[0] < n:
        raise ValueError("snaplen_cuts: arrays of different lengths")
    for i in range(n):
        if <int64_t>origlens[i] > lengths[i]:
            first = i
            break
    if first < 0:
        return None
    from array import array
    wire = array("q", bytes(8 * n))
    w = wire
    for i in range(n):
        w[i] = lengths[i]
        if <int64_t>origlens[i] > lengths[i]:
            w[i] = origlens[i]
            count += 1
    return wire, count


def build_pcap_records(const uint8_t[::1] out_data, const int64_t[::1] out_start, const int32_t[::1] out_len,
                       const int32_t[::1] out_frame, const int32_t[::1] out_port, const int64_t[::1] frame_ts,
                       int64_t[::1] port_bounds, const int32_t[::1] out_origlen=None):
    """Classic pcap records (nanosecond, little-endian) for every output, grouped per port.

    Output ``i`` is ``out_data[out_start[i]:out_start[i] + out_len[i]]``,
    leaving on port ``out_port[i]`` with the timestamp of its input frame
    ``frame_ts[out_frame[i]]``.  Returns one ``bytearray`` holding, port
    after port, each port's records in output order; ``port_bounds`` (length
    ports + 1, filled here) gives port ``p``'s run as
    ``blob[port_bounds[p]:port_bounds[p + 1]]``.

    ``out_origlen``: each output's length on the wire (``BatchResult.out_wire``),
    its record's original length when more than its length (an output of a
    frame a capture's snaplen cut: the captured bytes, the original length).
    """
    cdef Py_ssize_t n = out_frame.shape[0], n_ports = port_bounds.shape[0] - 1, i, p, at, length
    cdef Py_ssize_t total = 0, n_frames = frame_ts.shape[0], data_len = out_data.shape[0]
    cdef int64_t ts, orig
    cdef uint8_t *dst
    cdef int64_t *cursor
    cdef bint bad = False, cut = out_origlen is not None
    if out_port.shape[0] < n or out_start.shape[0] < n or out_len.shape[0] < n or n_ports < 0:
        raise ValueError("build_pcap_records: arrays of different lengths")
    if cut and out_origlen.shape[0] < n:
        raise ValueError("build_pcap_records: out_origlen is shorter than the outputs")
    port_bounds[:] = 0
    # Pass 1: bytes per port (bounds-checked: an engine's bad index must not write wild).
    for i in range(n):
        p = out_port[i]
        length = out_len[i]
        if (p < 0 or p >= n_ports or out_frame[i] < 0 or out_frame[i] >= n_frames or length < 0
                or out_start[i] < 0 or out_start[i] + length > data_len):
            bad = True
            break
        port_bounds[p + 1] += PCAP_REC_HDR + length
    if bad:
        raise ValueError(f"build_pcap_records: output {i} is out of range (port, frame or bytes)")
    for p in range(n_ports):
        port_bounds[p + 1] += port_bounds[p]
    total = port_bounds[n_ports]
    blob = PyByteArray_FromStringAndSize(NULL, total)
    dst = <uint8_t *>PyByteArray_AS_STRING(blob)
    cursor = <int64_t *>malloc((n_ports + 1) * sizeof(int64_t))
    if cursor == NULL:
        raise MemoryError()
    memcpy(cursor, &port_bounds[0], (n_ports + 1) * sizeof(int64_t))
    with nogil:
        for i in range(n):
            p = out_port[i]
            at = cursor[p]
            length = out_len[i]
            ts = frame_ts[out_frame[i]]
            if ts < 0:
                ts = 0
            wr32(dst + at, <uint32_t>(ts // NS))
            wr32(dst + at + 4, <uint32_t>(ts % NS))
            wr32(dst + at + 8, <uint32_t>length)
            orig = length
            if cut and out_origlen[i] > length:
                orig = out_origlen[i]
            wr32(dst + at + 12, <uint32_t>orig)
            if length:
                memcpy(dst + at + PCAP_REC_HDR, &out_data[out_start[i]], length)
            cursor[p] = at + PCAP_REC_HDR + length
    free(cursor)
    return blob


def account_batch(Py_ssize_t n_frames,
                  const int32_t[::1] out_frame, const int32_t[::1] out_port, const int8_t[::1] out_kind,
                  const int32_t[::1] drop_frame, const int8_t[::1] drop_reason, const int16_t[::1] drop_stage,
                  const uint8_t[::1] port_localnet, uint8_t[::1] frame_state,
                  int64_t[::1] class_counts, int64_t[::1] port_counts, int64_t[::1] kind_counts,
                  int64_t[::1] dropped_counts, int64_t[::1] copy_drop_counts, int n_stages):
    """Classify the frames of one batch and add to the run's counters.

    A frame is *delivered* when some copy left on a port that is not a
    localnet port, *exited* when copies left only on localnet ports,
    *dropped* when none left (``DELIVERED``/``EXITED``/``DROPPED`` index
    ``class_counts``).  ``port_counts[p]`` and ``kind_counts[k]`` count
    outputs.  Drop records are counted by ``reason * n_stages + stage``: the
    first record of each dropped frame in ``dropped_counts`` (reason 0,
    stage 0: a dropped frame without any record), every record of a frame
    that left somewhere in ``copy_drop_counts``.  ``frame_state`` (one byte
    per frame, overwritten) keeps bit 0 (left on a port), bit 1 (left on
    localnet) for :func:`build_drop_epbs`.  Returns the number of dropped
    frames in this batch.
    """
    cdef Py_ssize_t n_out = out_frame.shape[0], n_drop = drop_frame.shape[0], i, f, p, k, key
    cdef Py_ssize_t n_ports = port_localnet.shape[0], n_kinds = kind_counts.shape[0]
    cdef Py_ssize_t n_keys = dropped_counts.shape[0]
    cdef int64_t dropped = 0
    cdef uint8_t state
    cdef bint bad = False
    if frame_state.shape[0] < n_frames or class_counts.shape[0] < 3 or port_counts.shape[0] < n_ports:
        raise ValueError("account_batch: state or counter arrays too short")
    if (out_port.shape[0] < n_out or out_kind.shape[0] < n_out or drop_reason.shape[0] < n_drop
            or drop_stage.shape[0] < n_drop or copy_drop_counts.shape[0] < n_keys or n_stages <= 0):
        raise ValueError("account_batch: arrays of different lengths")
    with nogil:
        if n_frames:
            memset(&frame_state[0], 0, n_frames)
        for i in range(n_out):
            f = out_frame[i]
            p = out_port[i]
            k = out_kind[i]
            if f < 0 or f >= n_frames or p < 0 or p >= n_ports or k < 0 or k >= n_kinds:
                bad = True
                break
            frame_state[f] |= REACHED_LOCALNET if port_localnet[p] else REACHED_PORT
            port_counts[p] += 1
            kind_counts[k] += 1
        if not bad:
            for i in range(n_drop):
                f = drop_frame[i]
                key = <Py_ssize_t>drop_reason[i] * n_stages + drop_stage[i]
                if (f < 0 or f >= n_frames or drop_stage[i] < 0 or drop_stage[i] >= n_stages
                        or key < 0 or key >= n_keys):
                    bad = True
                    break
                state = frame_state[f]
                if state & (REACHED_PORT | REACHED_LOCALNET):
                    copy_drop_counts[key] += 1
                elif not state & FIRST_DROP_SEEN:
                    dropped_counts[key] += 1
                    frame_state[f] = state | FIRST_DROP_SEEN
        if not bad:
            for f in range(n_frames):
                state = frame_state[f]
                if state & REACHED_PORT:
                    class_counts[C_DELIVERED] += 1
                elif state & REACHED_LOCALNET:
                    class_counts[C_EXITED] += 1
                else:
                    class_counts[C_DROPPED] += 1
                    dropped += 1
                    if not state & FIRST_DROP_SEEN:
                        dropped_counts[0] += 1  # dropped with no disposition recorded
                frame_state[f] = state & (REACHED_PORT | REACHED_LOCALNET)
    if bad:
        raise ValueError("account_batch: an output or drop refers to a frame, port, kind, reason or "
                         "stage out of range")
    return dropped


cdef class _Names:
    """A list of ``bytes`` seen from C: pointers and lengths (the list keeps them alive)."""

    cdef list items
    cdef const char **ptr
    cdef Py_ssize_t *size
    cdef Py_ssize_t n

    def __cinit__(self, list items):
        cdef Py_ssize_t i
        self.items = [bytes(x) for x in items]
        self.n = len(self.items)
        self.ptr = <const char **>malloc((self.n + 1) * sizeof(char *))
        self.size = <Py_ssize_t *>malloc((self.n + 1) * sizeof(Py_ssize_t))
        if self.ptr == NULL or self.size == NULL:
            raise MemoryError()
        for i in range(self.n):
            self.ptr[i] = PyBytes_AS_STRING(self.items[i])
            self.size[i] = PyBytes_GET_SIZE(self.items[i])

    def __dealloc__(self):
        free(self.ptr)
        free(self.size)


cdef class DropNames:
    """The names a drop comment is made of, indexed by code: dispositions, stages, datapaths, ports.

    Built once per replay; :func:`build_drop_epbs` reads it from C.
    """

    cdef _Names reasons, stages, datapaths, ports

    def __init__(self, reasons, stages, datapaths, ports):
        self.reasons = _Names([s.encode() for s in reasons])
        self.stages = _Names([s.encode() for s in stages])
        self.datapaths = _Names([s.encode() for s in datapaths])
        self.ports = _Names([s.encode() for s in ports])


cdef inline Py_ssize_t put_option(uint8_t *dst, Py_ssize_t at, const char *a, Py_ssize_t na, const char *b,
                                  Py_ssize_t nb, const char *c, Py_ssize_t nc, const char *d, Py_ssize_t nd,
                                  const char *e, Py_ssize_t ne) noexcept nogil:
    """Write an opt_comment (code 1) made of up to five pieces at ``dst + at``; returns the new ``at``."""
    cdef Py_ssize_t length = na + nb + nc + nd + ne, start = at + 4
    wr16(dst + at, 1)
    wr16(dst + at + 2, <uint32_t>length)
    if na:
        memcpy(dst + start, a, na)
    if nb:
        memcpy(dst + start + na, b, nb)
    if nc:
        memcpy(dst + start + na + nb, c, nc)
    if nd:
        memcpy(dst + start + na + nb + nc, d, nd)
    if ne:
        memcpy(dst + start + na + nb + nc + nd, e, ne)
    memset(dst + start + length, 0, pad4(length) - length)
    return start + pad4(length)


def build_drop_epbs(const uint8_t[::1] data, const int64_t[::1] offsets, const int32_t[::1] lengths,
                    const uint32_t[::1] origlens, const int64_t[::1] stamps, const uint8_t[::1] frame_state,
                    const int32_t[::1] ingress, int64_t first_number,
                    const int32_t[::1] drop_frame, const int8_t[::1] drop_reason, const int16_t[::1] drop_stage,
                    const int32_t[::1] drop_datapath, DropNames names, const int32_t[::1] ifaces=None,
                    const int64_t[::1] numbers=None, details=None):
    """pcapng Enhanced Packet Blocks (interface 0, nanosecond timestamps) for the dropped frames.

    A frame is dropped when ``frame_state`` (from :func:`account_batch`) says
    no copy left.  Its block carries the frame as captured (``origlens``
    kept) and one ``opt_comment`` per drop record, ``"<disposition> at
    <datapath> <stage>"``, then ``"frame <n>, ingress <port>"`` (``n`` is
    the 1-based frame number in the capture: ``first_number`` + index).
    ``ifaces`` (optional): each frame's interface id in the output file
    (else interface 0).  ``numbers`` (optional): each frame's number in the
    capture, when the batch is not consecutive frames (else ``first_number``
    + index).  ``details`` (optional): per drop record, ``bytes`` written as
    one more comment right after the record's (empty: none), e.g. the
    security group rule an ACL drop needed.  Returns the blocks as one
    ``bytearray``.
    """
    cdef _Names detail_names = None
    cdef bint has_details = details is not None
    cdef Py_ssize_t n = frame_state.shape[0], n_drop = drop_frame.shape[0], i, f, j, size, total = 0, at, cl
    cdef Py_ssize_t body, start
    cdef int32_t *first
    cdef int32_t *nxt
    cdef int r, s, d, port
    cdef char number[48]
    cdef int nlen
    cdef uint8_t *dst
    cdef const char *port_name
    cdef Py_ssize_t port_len
    cdef uint64_t ts
    cdef bint bad = False
    cdef const char *none_text = b"dropped: no disposition recorded"
    cdef Py_ssize_t none_len = 32
    if (offsets.shape[0] < n or lengths.shape[0] < n or origlens.shape[0] < n or stamps.shape[0] < n
            or ingress.shape[0] < n):
        raise ValueError("build_drop_epbs: frame arrays shorter than frame_state")
    cdef bint has_ifaces = ifaces is not None
    if has_ifaces and ifaces.shape[0] < n:
        raise ValueError("build_drop_epbs: ifaces shorter than frame_state")
    cdef bint has_numbers = numbers is not None
    if has_numbers and numbers.shape[0] < n:
        raise ValueError("build_drop_epbs: numbers shorter than frame_state")
    if drop_reason.shape[0] < n_drop or drop_stage.shape[0] < n_drop or drop_datapath.shape[0] < n_drop:
        raise ValueError("build_drop_epbs: drop arrays of different lengths")
    if has_details:
        if len(details) < n_drop:
            raise ValueError("build_drop_epbs: details shorter than the drop arrays")
        detail_names = _Names([bytes(text) for text in details])
    # Drop records per frame as linked lists in record order (first[f], nxt[i]).
    first = <int32_t *>malloc((n + 1) * sizeof(int32_t))
    nxt = <int32_t *>malloc((n_drop + 1) * sizeof(int32_t))
    if first == NULL or nxt == NULL:
        free(first)
        free(nxt)
        raise MemoryError()
    for f in range(n):
        first[f] = -1
    for i in range(n_drop - 1, -1, -1):
        f = drop_frame[i]
        if (f < 0 or f >= n or drop_reason[i] < 0 or drop_reason[i] >= names.reasons.n
                or drop_stage[i] < 0 or drop_stage[i] >= names.stages.n
                or drop_datapath[i] < 0 or drop_datapath[i] >= names.datapaths.n):
            bad = True
            break
        nxt[i] = first[f]
        first[f] = <int32_t>i
    if bad:
        free(first)
        free(nxt)
        raise ValueError(f"build_drop_epbs: drop record {i} is out of range")
    # Pass 1: sizes.
    for f in range(n):
        if frame_state[f] & (REACHED_PORT | REACHED_LOCALNET):
            continue
        size = EPB_HDR + pad4(lengths[f]) + 4 + 4  # ... end of options, trailing length
        j = first[f]
        if j < 0:
            size += 4 + pad4(none_len)
        while j >= 0:
            size += 4 + pad4(names.reasons.size[drop_reason[j]] + 4 + names.datapaths.size[drop_datapath[j]]
                             + 1 + names.stages.size[drop_stage[j]])
            if has_details and detail_names.size[j]:
                size += 4 + pad4(detail_names.size[j])
            j = nxt[j]
        port = ingress[f]
        port_len = names.ports.size[port] if 0 <= port < names.ports.n else 6
        nlen = snprintf(number, sizeof(number), b"frame %lld, ingress ",
                        <long long>(numbers[f] if has_numbers else first_number + f))
        size += 4 + pad4(nlen + port_len)
        total += size
    blob = PyByteArray_FromStringAndSize(NULL, total)
    dst = <uint8_t *>PyByteArray_AS_STRING(blob)
    at = 0
    # Pass 2: the blocks.
    for f in range(n):
        if frame_state[f] & (REACHED_PORT | REACHED_LOCALNET):
            continue
        start = at
        cl = lengths[f]
        ts = <uint64_t>stamps[f] if stamps[f] > 0 else 0
        wr32(dst + at, 6)
        wr32(dst + at + 8, <uint32_t>ifaces[f] if has_ifaces else 0)
        wr32(dst + at + 12, <uint32_t>(ts >> 32))
        wr32(dst + at + 16, <uint32_t>(ts & 0xffffffff))
        wr32(dst + at + 20, <uint32_t>cl)
        wr32(dst + at + 24, origlens[f])
        at += EPB_HDR
        if cl:
            memcpy(dst + at, &data[offsets[f]], cl)
        memset(dst + at + cl, 0, pad4(cl) - cl)
        at += pad4(cl)
        j = first[f]
        if j < 0:
            at = put_option(dst, at, none_text, none_len, NULL, 0, NULL, 0, NULL, 0, NULL, 0)
        while j >= 0:
            r = drop_reason[j]
            s = drop_stage[j]
            d = drop_datapath[j]
            at = put_option(dst, at, names.reasons.ptr[r], names.reasons.size[r], b" at ", 4,
                            names.datapaths.ptr[d], names.datapaths.size[d], b" ", 1,
                            names.stages.ptr[s], names.stages.size[s])
            if has_details and detail_names.size[j]:
                at = put_option(dst, at, detail_names.ptr[j], detail_names.size[j], NULL, 0, NULL, 0, NULL, 0,
                                NULL, 0)
            j = nxt[j]
        port = ingress[f]
        if 0 <= port < names.ports.n:
            port_name = names.ports.ptr[port]
            port_len = names.ports.size[port]
        else:
            port_name = b"(none)"
            port_len = 6
        nlen = snprintf(number, sizeof(number), b"frame %lld, ingress ",
                        <long long>(numbers[f] if has_numbers else first_number + f))
        at = put_option(dst, at, number, nlen, port_name, port_len, NULL, 0, NULL, 0, NULL, 0)
        wr32(dst + at, 0)  # opt_endofopt
        at += 4
        body = at + 4 - start
        wr32(dst + start + 4, <uint32_t>body)
        wr32(dst + at, <uint32_t>body)
        at += 4
    free(first)
    free(nxt)
    if at != total:  # pass 1 and pass 2 disagree: a bug here, never bad input
        raise AssertionError(f"build_drop_epbs: wrote {at} bytes, sized {total}")
    return blob
