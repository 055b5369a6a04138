"""web of the crypto-checkout worker (registered on app.faust_app.app by autodiscovery)."""
