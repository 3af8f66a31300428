"""The Balance adapter: the only code in billy that knows XML-RPC or Balance's field names."""
