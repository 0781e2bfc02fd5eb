// OwnID's three Express request handlers as its page gives them (shared/seed/
// ownid-server-endpoints.txt), with the Mongoose `User` model replaced by node-postgres over the
// demo table `users` (login_id, ownid_data) and one change: an unknown user is answered 404
// instead of crashing on `user.ownIdData = ...`, so that a benchmark run survives a miss. No
// signature check, as in the template; sessions signed with the literal 'secret', as in the
// template.
//
//   DATABASE_URL=postgres://... PORT=8081 POOL=32 node server.js
const express = require('express');
const sign = require('jwt-encode');
const { Pool } = require('pg');

const pool = new Pool({
  connectionString: process.env.DATABASE_URL,
  max: Number(process.env.POOL || 32),
});
const User = {
  async findOne(email) {
    const result = await pool.query('SELECT login_id, ownid_data FROM users WHERE login_id = $1', [email]);
    return result.rows[0] && { email: result.rows[0].login_id, ownIdData: result.rows[0].ownid_data };
  },
  async save(user) {
    await pool.query('UPDATE users SET ownid_data = $1 WHERE login_id = $2', [user.ownIdData, user.email]);
  },
};

const router = express.Router();

router.post('/setOwnIDDataByLoginId', async (req, res) => {
  const email = req.body.loginId;
  const ownIdData = req.body.ownIdData;
  const user = await User.findOne(email);
  if (!user) { return res.sendStatus(404); }
  user.ownIdData = ownIdData;
  await User.save(user);
  return res.sendStatus(204);
});

router.post('/getOwnIDDataByLoginId', async (req, res) => {
  const email = req.body.loginId;
  const user = await User.findOne(email);
  if (!user) { return res.json({ errorCode: 404 }); }
  res.json({ ownIdData: user.ownIdData });
});

router.post('/getSessionByLoginId', async (req, res) => {
  const email = req.body.loginId;
  const user = await User.findOne(email);
  if (!user) { return res.sendStatus(404); }
  const jwt = sign({ email: user.email }, 'secret');
  return res.json({ token: jwt });
});

const app = express();
app.use(express.json());
app.use('/ownid', router);
const server = app.listen(Number(process.env.PORT || 8081), '127.0.0.1', () => {
  console.log(`seed-express listening on http://127.0.0.1:${server.address().port}`);
});
