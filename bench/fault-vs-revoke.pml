/* vfio-sim bench: the series v4 fault path racing COMMAND.MEMORY writes, abstracted for Spin, to
   compare the explorer's exhaustive check of the same race shape with a state-space search.
   F faulting threads load P distinct pages each; one VMM thread writes COMMAND R times
   (off, on, off, ...). Modelled: the buffer's resv mutex and status check, the device registration
   count, memory_lock (rwsem: readers share, a writer excludes), the status re-check and PTE insert
   under memory_lock(read), the revoke (status to TEMP_REVOKED under resv, zap every PTE) and the
   un-revoke under memory_lock(write). Checked: no load reaches the BAR with decode off
   (decode-enabled) and no PTE survives a finished revoke (no-stale-pte). -DNOZAP drops the zap.
   -DFAITHFUL runs the fault at the explorer's granularity instead of one attempt per load: the order
   attempts the v4 handler really makes (vfio_pci_mmap_huge_fault as of [PATCH v4 08/10] vfio/pci:
   Support mmap() of a VFIO DMABUF: each attempt takes resv, checks status, takes a registration,
   then memory_lock(read) and checks again), PUD and PMD while those entries are empty, the PTE
   level only after the per-VMA lock path gives way to mmap_lock; a load faults again until its
   access lands or it gets SIGBUS; each load's outcome stays in its thread, as the explorer keeps
   operation results; and the zap is one step, as zap_page_range is in the explorer. */
#ifndef F
#define F 2
#endif
#ifndef P
#define P 2
#endif
#ifndef R
#define R 2
#endif
#define NPTE (F * P)

bool decode = true;        /* COMMAND.MEMORY in hardware */
bool revoked = false;      /* the buffer's status is not OK */
bool revoking = false;     /* a revoke is between its status write and the end of its zap */
bool pte[NPTE];
byte nreaders = 0;         /* memory_lock */
bool wlocked = false;
bool resv = false;         /* the buffer's dma_resv mutex */
byte registration = 1;
#ifdef FAITHFUL
bool pmd_table = false;    /* the PUD entry points at a PMD table: no PUD-order attempt */
bool pte_table = false;    /* the PMD entry points at a PTE table: no PMD-order attempt */
#define OK 1
#define FALLBACK 2
#define SIGBUS 3
#endif

inline lock_resv()   { atomic { !resv -> resv = true } }
inline unlock_resv() { resv = false }
inline read_lock()   { atomic { !wlocked -> nreaders++ } }
inline read_unlock() { nreaders-- }
inline write_lock()  { atomic { !wlocked && nreaders == 0 -> wlocked = true } }
inline write_unlock(){ wlocked = false }

#ifdef FAITHFUL
/* one call of the handler at one order: resv, status, registration; memory_lock(read), status again;
   then FALLBACK above the PTE level (the VA and the PFN do not line up), the PTE if decode is on */
inline attempt(pte_level) {
  lock_resv();
  if
  :: revoked -> unlock_resv(); res = SIGBUS
  :: else ->
     registration++;
     unlock_resv();
     read_lock();
     if
     :: revoked -> res = SIGBUS
     :: !revoked && !pte_level -> res = FALLBACK
     :: !revoked && pte_level && decode -> atomic { pte[first + i] = true; pte_table = true }; res = OK
     :: !revoked && pte_level && !decode -> res = SIGBUS
     fi;
     read_unlock();
     registration--
  fi
}

proctype Faulter(byte first) {
  byte i = 0, res;
  byte out[P];
  do
  :: i < P ->
     do
     :: atomic { pte[first + i] -> assert(decode); out[i] = OK; break }
     :: atomic { else -> res = FALLBACK };
        /* under the per-VMA lock: the huge orders while their entries are empty */
        if :: !pmd_table -> attempt(false); if :: res == FALLBACK -> pmd_table = true :: else -> skip fi :: else -> skip fi;
        if :: res == FALLBACK && !pte_table -> attempt(false) :: else -> skip fi;
        /* under mmap_lock: again the PMD order while its entry is empty, then the PTE */
        if :: res == FALLBACK && !pte_table -> attempt(false) :: else -> skip fi;
        if :: res == FALLBACK -> attempt(true) :: else -> skip fi;
        if :: res == SIGBUS -> out[i] = SIGBUS; break :: else -> skip fi
     od;
     i++
  :: else -> break
  od
}
#else
proctype Faulter(byte first) {
  byte i = 0;
  bool ok;
  do
  :: i < P ->
     if
     :: pte[first + i] -> skip
     :: else ->
        lock_resv();
        ok = !revoked;
        if :: ok -> registration++ :: else -> skip fi;
        unlock_resv();
        if
        :: ok ->
           read_lock();
           if :: !revoked && decode -> pte[first + i] = true :: else -> skip fi;
           read_unlock();
           registration--
        :: else -> skip
        fi
     fi;
     /* the access: through a present entry it reaches the BAR */
     atomic { if :: pte[first + i] -> assert(decode) :: else -> skip fi };
     i++
  :: else -> break
  od
}
#endif

proctype Vmm() {
  byte w = 0, j;
  do
  :: w < R ->
     write_lock();
     if
     :: w % 2 == 0 ->            /* COMMAND = 0: revoke, zap, decode off */
        lock_resv(); atomic { revoked = true; revoking = true }; unlock_resv();
#ifndef NOZAP
#ifdef FAITHFUL
        /* zap_page_range clears the mapping's entries in one step, as the explorer's model does */
        d_step { j = 0; do :: j < NPTE -> pte[j] = false; j++ :: else -> break od; j = 0 };
#else
        j = 0; do :: j < NPTE -> pte[j] = false; j++ :: else -> break od;
#endif
#endif
        revoking = false;
        decode = false
     :: else ->                  /* COMMAND = 2: decode on, un-revoke */
        decode = true;
        lock_resv(); revoked = false; unlock_resv()
     fi;
     write_unlock();
     w++
  :: else -> break
  od
}

/* no-stale-pte: a finished revoke leaves no entry */
active proctype monitor() {
  byte k;
end:
  do
  :: atomic { revoked && !revoking -> k = 0; do :: k < NPTE -> assert(!pte[k]); k++ :: else -> break od }
  od
}

init {
  byte f = 0;
  atomic {
    do :: f < F -> run Faulter(f * P); f++ :: else -> break od;
    run Vmm()
  }
}
