"""crypto-checkout: USDT (TRC-20) payments on Tron, as a Faust stream-processing platform."""
