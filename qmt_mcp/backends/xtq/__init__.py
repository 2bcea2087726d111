"""The xtquant backend: xtquant's own Python layer (`xttrader`) over miniQMT, or over the simulator."""
