"""stc.lava: Loihi 2 mapping through Lava (netx export, custom processes, allocation) and the
lava-sim / loihi executors. Call ``stc.lava.compat.import_lava()`` before importing lava."""
