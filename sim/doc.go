// Package sim is tenfold's deterministic simulator: the real node cores
// (control and data roles, package core) on in-memory engines that model
// fsync (engine/memengine), driven by one event loop in virtual time, under
// faults drawn from one seed, with simulated clients and watchers whose
// histories are checked against the invariants of INVARIANTS.md.
//
// # A run
//
// Time starts at Epoch. Every node ticks every TickInterval on its own
// (possibly skewed) clock; after every input (tick, message, client
// request) the loop calls Ready and schedules the outputs: messages travel
// after a link's latency (two in-order streams per directed link, urgent and
// bulk, as in the runtime's transport; links and streams race each other),
// and when the round synced the engine, nothing leaves the node before a
// sampled fsync latency, except, when the seed chose SendEarly (as the
// runtime always does, core.Config.SendEarly), a leader's raft appends:
// those leave during Ready, after the node's earlier outputs but before the
// round's fsync, so a crash can lose the leader's copy of entries its
// followers have. The run goes through four phases:
//
//  1. Warmup: the cluster bootstraps (control leader, registrations,
//     system and data ranges). The control plane waits for every data node
//     and spreads the data ranges over all of them (InitialDataNodes), so
//     with more data nodes than replicas some nodes, the system range's
//     leader among them, host no replica of some ranges.
//  2. Active (Duration): clients run put, get, delete and CAS over a few
//     keys; watchers follow the keys of one range each, served by the
//     watch hub of a node (core/watch, the hub the runtime runs), from
//     revision 1 or from "now" (created at a random point of the first half
//     of the phase); lease clients grant, keep alive, revoke or abandon
//     leases and put keys with them in every range (sim/lease.go); faults
//     start at FaultRate per second, each healing on its own after a
//     bounded time.
//  3. Heal: every fault ends at once; the run waits until every range has a
//     leader (recovery), then clients run for one more deadline.
//  4. Final: every key is read once more, watchers ask for progress until
//     they reach the last acknowledged write, and the history checkers run.
//
// Everything random (latencies, loss, which node a fault hits, each node
// core's Rand, clients' choices) comes from the seed; nothing reads the wall
// clock or runs concurrently, and no decision depends on map order. Every
// event, with its message bytes (deterministic proto encoding), is folded
// into a SHA-256 trace hash: the same seed and configuration give the same
// hash, which TestDeterminism checks. Config.Args gives the command that
// replays a run.
//
// A randomized run (Config.Randomize, `tenfold sim --randomize`) also draws
// its configuration from the seed (randomize.go): control plane of 1, 3 or
// 5, 3 to 7 data nodes, 1 to 6 ranges, workload, fault rate and outages,
// link and fsync latencies, election and heartbeat ticks, a sequencer
// window down to one revision, one to 512 requests per raft entry, and
// range leaders' queue bounds. Settings given as flags are pinned; the
// replay command pins every drawn setting and gives the same run.
//
// With Buggify (`tenfold sim --buggify`) every node core is also pushed
// onto rare but legal paths, as FoundationDB's BUGGIFY does
// (core/host/buggify.go): forced leader transfers, ranges that never
// quiesce, a sequencer window extended only by what it grants, one
// request per write cycle, early resends. Each site is on or off for a
// node's life (one in four on) and fires at random when on. Unlike Bugs,
// these are correct behaviours: a buggified run must pass every check.
//
// # Faults
//
// partition: one node isolated, the leader of a range isolated, a
// symmetric split, a one-way cut (a node that cannot send, or cannot
// receive), a flapping isolation. crash: in-flight messages to the node are
// dropped, unsent outputs are lost, and so are unsynced writes except a
// seeded prefix of them (memengine.CrashWithPrefix); the node restarts with
// core.New on what its engine kept. pause: the node stops ticking and its
// inputs queue up (a stopped process, a long GC pause). clock: the node's
// clock jumps within MaxClockSkew. loss: messages are dropped on every link.
// disk: a node's fsyncs get slow, or stall for seconds. dup: messages are
// duplicated and may overtake others; the runtime's gRPC transport never
// duplicates, but the core does not rely on it (data ranges deduplicate
// client writes in a session table, see core/session.go), so dup is part of
// "all" and "random". A core that panics, or whose Ready fails, is
// reported and crashed like a dying process, and the run goes on.
//
// # Invariants and how they are checked
//
//	S1 single-key linearizability    check.CheckLinearizable (porcupine, per key, per window between
//	                                 quiescent points, carrying the possible states) over the whole
//	                                 history, including a final read of every key after healing,
//	                                 so a lost acknowledged write (S2) shows up here too; a check
//	                                 that runs out of LinearizabilityTimeout fails the seed
//	S2 no acknowledged write lost    final reads + S1; crashes lose unsynced writes for real
//	S3 one leader per range and term (range, term) -> leader from every node's RangeStatuses, every
//	                                 CheckInterval, and from every raft append, heartbeat and
//	                                 snapshot sent (only leaders send them); two leaders for one
//	                                 pair is a violation
//	S4 directory coverage            every directory the control leader serves (KeepaliveResponse)
//	                                 covers the keyspace with no gap or overlap and has Ranges data
//	                                 ranges; no node's range cache has overlapping ranges
//	S5 replica checksums             every HashInterval, replicas of a data range at the same applied
//	                                 index must agree on revision, closed and compacted revisions and
//	                                 on mvcc.Hash of their state
//	S6 revision order                per replica, each applied entry's events are above every earlier
//	                                 entry's (plus the core's own assertion, reported as "core");
//	                                 check.CheckRevisions: no revision acknowledged twice, per-key mod
//	                                 revisions follow real time; no revision gaps ("S6-gaps") in a
//	                                 fault-free run, and in every run over its fault-free tail (from
//	                                 recovery and the last leader change on: every revision between
//	                                 the lowest and highest acknowledged to a write issued there was
//	                                 applied; earlier gaps are legal, failed compares and reads take
//	                                 none, and each write that timed out in the tail may leave one)
//	S6 watches ("S6-watch")          check.CheckWatches: order, no duplicates, no gaps, progress
//	                                 notifications honest, every watcher reaches the last write;
//	                                 a watch from now starts above every write acknowledged
//	                                 before it was created (sim/watch.go)
//	S7 store revision monotonic      check.CheckRevisions: an op that starts after another returned
//	                                 never reports a lower revision
//	S8 reads across ranges           a read of the whole client keyspace every second (sim/scan.go):
//	                                 refused, or every key as the applied events left it at the
//	                                 header revision
//	S9 not applied means never       no put or CAS that failed definitely has its (unique) value
//	                                 applied by any replica
//	S10 leases                       once a client saw a lease dead (revoke acknowledged, or NotFound /
//	                                 TimeToLive -1), no put with it issued later succeeds and a
//	                                 linearizable read of each of its keys finds nothing
//	L1 leaders after healing         every range (control, system, data) has a leader within
//	                                 LivenessBound (default 10 virtual seconds) after the heal
//	L2 definite answers              every operation issued after recovery ends Ok or with a definite
//	                                 error within its deadline (lease operations too); a lease seen
//	                                 expiring before recovery is gone by the end of the client phase;
//	                                 final reads succeed; the run finishes before its hard deadline;
//	                                 progress: refusals are answers but not progress, so every client
//	                                 has an operation answered after recovery, and so has the write
//	                                 traffic (10 writes or more) of every data range
//	L4 idle ranges are free          fault-free runs without lease clients (a revoke visits every
//	                                 range): a data range without client keys sends no
//	                                 message in the active phase once it had 2 s to quiesce
//
// L3 (repair of under-replicated ranges) is not checked: the control plane
// does not repair yet. Every checker has a test that switches on a
// deliberate core bug (core.Bugs, --bugs) and shows it is caught within a
// bounded number of seeds (TestCatches*): S1 ack-before-sync, stale-reads;
// S3 ack-before-sync (crashed voters forget their votes); S4
// overlapping-ranges; S5 divergent-apply; S6 reuse-revision,
// drop-watch-event, stale-watch-start, skip-revision (gaps, in runs with
// faults); S7 stale-reads; S8 serve-cross-range; S9 fail-on-deposed; S10
// revoke-skips-range, put-ignores-revoke (sim/lease_test.go); S11
// (at-most-once writes, asserted by the core on apply and reported as
// "core") no-dedup; L1 no-reelection; L2 refuse-writes-after-failover; L4
// no-quiesce. Config.StopOn ends a bug hunt's run at the first sign.
//
// # Running
//
//	tenfold sim --seed 7                        one run, full report
//	tenfold sim --seeds 1000 --seed 5000        a soak, one line per seed
//	tenfold sim --seed 7 --bugs stale-reads     watch a checker catch a bug
//	go test ./sim/                              determinism, 200 seeds, bug tests
//	TENFOLD_SIM_SEEDS=5000 go test ./sim/ -run TestSeeds -timeout 0   a soak
package sim
