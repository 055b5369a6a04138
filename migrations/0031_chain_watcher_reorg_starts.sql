-- A reorg deeper than the chain watcher's kept window no longer stops it (docs/reliability.md,
-- "A reorg deeper than the window"): it anchors again on the node's chain just below its lowest
-- kept block and reads on, recording that as a start of kind `reorg` whose gap holds the blocks
-- read before that can no longer be verified (`checkout chain status` shows it, `checkout chain
-- rescan` reads them again).
ALTER TABLE chain_watcher_starts DROP CONSTRAINT chain_watcher_starts_how_check;
ALTER TABLE chain_watcher_starts ADD CONSTRAINT chain_watcher_starts_how_check
    CHECK (how IN ('first', 'resume', 'setting', 'command', 'migration', 'reorg'));
