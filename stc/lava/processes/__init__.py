"""Lava processes for what netx cannot express: delayed residual Add, SDSA from neurons, and
SSA / DSFormer attention as fixed-point Python processes (host / embedded-core execution on
Loihi 2 hardware). Import ``stc.lava.compat.import_lava()`` first (these modules do it)."""
